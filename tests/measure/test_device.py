"""measure.device: what counts as out of memory, the real CUDA backend's calls (torch.cuda patched), busy time."""

from __future__ import annotations

import pytest
import torch

from llmecon.measure import device as device_mod
from llmecon.measure.device import CudaBackend, busy_span_us, decode_reasons, out_of_memory_reason


@pytest.mark.parametrize("exc, oom", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
    (RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"), True),
    (RuntimeError("CUDA driver error: CUDA_ERROR_OUT_OF_MEMORY"), True),
    (MemoryError(), True),
    (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasGemmEx"), False),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
    (ValueError("out of memory"), False),   # not an error a device raises
])
def test_device_out_of_memory_is_recognised_from_type_or_library_message(exc, oom):
    assert (out_of_memory_reason(exc) is not None) is oom


def test_device_cuda_backend_empties_the_cache_before_resetting_the_peak(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: calls.append("reset_peak"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: 7 << 30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda d=None: 8 << 30)
    be = CudaBackend("cuda:0")
    be.reset_memory()
    assert calls == ["synchronize", "empty_cache", "reset_peak"]
    assert be.peak_memory()["peak_bytes"] == 7 << 30 and be.peak_memory()["peak_reserved_bytes"] == 8 << 30


def test_device_cuda_events_give_seconds(monkeypatch):
    class Event:
        recorded = []

        def __init__(self, enable_timing=False):
            assert enable_timing

        def record(self):
            Event.recorded.append(self)

        def elapsed_time(self, end):
            return 12.5  # milliseconds, as CUDA reports them

    monkeypatch.setattr(torch.cuda, "Event", Event)
    timer = CudaBackend("cuda:0").event_timer()
    timer.start()
    timer.stop()
    assert len(Event.recorded) == 2 and timer.elapsed_s() == pytest.approx(0.0125)


def test_device_busy_time_counts_overlapping_kernels_once():
    assert busy_span_us([(0, 10), (5, 15), (20, 30), (21, 22)]) == 25
    assert busy_span_us([]) == 0


def test_device_clock_event_reasons_decode_without_idle():
    assert decode_reasons(0x1 | 0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]


def test_device_count_without_cuda_is_zero_and_a_fake_factory_answers_its_own(monkeypatch, fake_cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_mod.cuda_device_count() == 0
    fake_cuda(device_count=2)
    assert device_mod.cuda_device_count() == 2
