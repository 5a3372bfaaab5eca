"""A fake CUDA device for the tests: measure.device's interface with CUDA's answers, tensors on the CPU.

``install(monkeypatch, **kw)`` makes every "cuda:N" device of the bench a ``FakeCuda`` (resolve_device sees one
GPU) and returns the factory, whose ``.last`` is the backend most recently made. Its NVML has a power that the
test sets (``nvml.set_power(w)``), an energy counter integrating that power over the real clock, clock-event
reasons, a compute mode and a process count; its events time with the host clock times ``event_factor``; its
memory peak is planted (``peak_bytes``, raised while ``spike_bytes`` is set); ``profile_kernels`` answers a
planted kernel count and busy time.
"""

from __future__ import annotations

import threading
import time

from llmecon.measure import device as device_mod


class FakeNvml:
    def __init__(self, power_w: float = 300.0, reasons: int = 0x0, compute_mode: str = "default",
                 processes: int = 1, energy_counter: bool = True):
        self._lock = threading.Lock()
        self._power_w = power_w
        self._t = time.perf_counter()
        self._energy_mj = 5_000_000.0
        self.reasons, self.mode, self.processes, self.energy_counter = reasons, compute_mode, processes, energy_counter

    def _advance(self):
        now = time.perf_counter()
        self._energy_mj += self._power_w * (now - self._t) * 1000.0
        self._t = now

    def set_power(self, watts: float) -> None:
        with self._lock:
            self._advance()
            self._power_w = watts

    def energy_mj(self):
        if not self.energy_counter:
            return None
        with self._lock:
            self._advance()
            return int(self._energy_mj)

    def power_w(self):
        return self._power_w

    def sm_clock_mhz(self):
        return 1980

    def temperature_c(self):
        return 55

    def clock_event_reasons(self):
        return self.reasons

    def compute_mode(self):
        return self.mode

    def process_count(self):
        return self.processes

    def details(self) -> dict:
        return {"nvml_name": "NVIDIA H200", "driver": "570.00", "power_limit_w": 700.0, "compute_mode": self.mode,
                "energy_counter_available": self.energy_counter,
                "gpu_processes": [{"pid": 4242, "used_memory_bytes": 1 << 20}], "foreign_gpu_pids": [4242]}


class FakeTimer:
    """CUDA events, faked: the host clock between start() and stop(), times the backend's event_factor."""

    def __init__(self, factor: float):
        self.factor = factor
        self._a = self._b = None

    def start(self):
        self._a = time.perf_counter()

    def stop(self):
        self._b = time.perf_counter()

    def elapsed_s(self):
        return (self._b - self._a) * self.factor


class FakeCuda:
    kind = "cuda"
    ceiling_gemm_n = 128
    ceiling_copy_bytes = 1 << 20

    def __init__(self, device: str, *, nvml: FakeNvml | None = None, nvml_reason: str | None = None,
                 event_factor: float = 0.9, kernel_time_s: float | None = 1e-5, kernels: int | None = 420,
                 peak_bytes: int = 1 << 30):
        self.device, self.torch_device = device, "cpu"
        self.nvml_fake = nvml if nvml is not None or nvml_reason else FakeNvml()
        self.nvml_reason = nvml_reason
        self.event_factor = event_factor
        self.kernel_time_s, self.kernels = kernel_time_s, kernels
        self.base_peak = peak_bytes
        self.spike_bytes: int | None = None   # while set, the peak statistic rises to it
        self._peak = peak_bytes
        self.calls: list[str] = []

    # the interface
    def synchronize(self):
        self.calls.append("synchronize")

    def event_timer(self):
        return FakeTimer(self.event_factor)

    def reset_memory(self):
        self.calls.append("reset_memory")
        self._peak = self.base_peak

    def reset_peak(self):
        self.calls.append("reset_peak")
        self._peak = self.spike_bytes or self.base_peak

    def peak_memory(self) -> dict:
        if self.spike_bytes:
            self._peak = max(self._peak, self.spike_bytes)
        return {"peak_bytes": self._peak, "peak_reserved_bytes": self._peak, "process_max_rss_bytes": 1, "reason": None}

    def is_oom(self, exc):
        return device_mod.out_of_memory_reason(exc) is not None

    def nvml(self):
        return (self.nvml_fake, None) if self.nvml_reason is None else (None, self.nvml_reason)

    def profile_kernels(self, step):
        step()
        return {"kernels": self.kernels, "kernel_time_s": self.kernel_time_s,
                "reason": None if self.kernels else "torch.profiler saw no CUDA kernels (CUPTI unavailable?)"}

    def supports_fused_adamw(self):
        return False

    def properties(self) -> dict:
        return {"name": "NVIDIA H200", "index": 0, "count": 1, "memory_bytes": 150_000_000_000,
                "multiprocessors": 132, "compute_capability": "9.0", "cuda": "12.8"}


class FakeFactory:
    """BACKEND_FACTORY replacement: CPU stays CPU, cuda:N is a FakeCuda built with ``kwargs``."""

    def __init__(self, device_count: int = 1, **kwargs):
        self.device_count, self.kwargs = device_count, kwargs
        self.made: dict[str, FakeCuda] = {}

    def __call__(self, device: str):
        if not device.startswith("cuda"):
            return device_mod.CpuBackend(device)
        if device not in self.made:  # one backend per device, as a process has one GPU state
            self.made[device] = FakeCuda(device, **self.kwargs)
        return self.made[device]

    @property
    def last(self) -> FakeCuda:
        return next(reversed(self.made.values()))


def install(monkeypatch, **kwargs) -> FakeFactory:
    factory = FakeFactory(**kwargs)
    monkeypatch.setattr(device_mod, "BACKEND_FACTORY", factory)
    return factory
