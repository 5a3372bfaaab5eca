"""Every device-specific call of a bench, behind one small interface, so that tests drive each CUDA branch with a
fake (tests/measure/fakes.py) on a machine without a GPU.

A ``Backend`` answers, for one device:

- ``kind`` ("cpu" or "cuda", the branch the bench takes) and ``torch_device`` (where tensors live: the device
  itself; a fake CUDA backend keeps them on the CPU);
- ``synchronize()``: wait for the device;
- ``event_timer()``: a pair of CUDA events (``start()``, ``stop()``, ``elapsed_s()`` after a synchronize), or
  None where the device has no clock of its own (CPU);
- memory: ``reset_memory()`` (empty the allocator's cache, then reset the peak, so a configuration's peak never
  holds blocks cached by an earlier one), ``peak_memory()`` and ``reset_peak()``;
- ``is_oom(exc)``: whether an exception means the device ran out of memory (``out_of_memory_reason``);
- ``nvml()``: the device's NVML queries (``Nvml``), or (None, why not);
- ``profile_kernels(step)``: the kernels one call of ``step`` launched and the device time they took
  (torch.profiler's CUDA activity), or the reason it could not tell.

``backend(device)`` returns the real one; tests replace ``BACKEND_FACTORY``.
"""

from __future__ import annotations

import functools
import gc
import os
import resource
from typing import Callable, Protocol

# NVML clock-event reason bits (nvml.h: nvmlClocksEventReason*); GpuIdle (0x1) is ignored on purpose.
# sw_power_cap is the card holding its power limit: the normal state of a GPU at full load (a 700 W H200 runs
# there through most of a large GEMM), reported as ``power_capped``, not as throttling.
CLOCK_EVENT_BITS = {
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
POWER_CAP = "sw_power_cap"
THROTTLES = ("hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")

# nvml.h: nvmlComputeMode_t
COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}

# How each library says "out of memory" when it does not raise torch.OutOfMemoryError: the caching allocator's
# own message, the CUDA runtime (cudaErrorMemoryAllocation: "out of memory"), the driver API, cuBLAS and cuDNN
# workspace allocations (cublasStatus_t / cudnnStatus_t names, as torch's error checks print them).
OOM_MARKERS = ("out of memory", "cuda_error_out_of_memory", "cudaerrormemoryallocation",
               "cublas_status_alloc_failed", "cudnn_status_alloc_failed", "cufft_alloc_failed",
               "cusolver_status_alloc_failed")


def out_of_memory_reason(exc: BaseException) -> str | None:
    """Why ``exc`` counts as out of memory (the exception type, or the marker its message holds), else None."""
    import torch

    types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                              getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)) if t)
    if types and isinstance(exc, types):
        return type(exc).__name__
    if isinstance(exc, (RuntimeError, MemoryError)):
        if isinstance(exc, MemoryError):
            return "MemoryError"
        text = str(exc).lower()
        for marker in OOM_MARKERS:
            if marker in text:
                return f"{type(exc).__name__} mentioning {marker!r}"
    return None


class EventTimer(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def elapsed_s(self) -> float: ...


class Nvml(Protocol):
    """One GPU's NVML queries; each returns None when NVML cannot say."""

    def energy_mj(self) -> int | None: ...
    def power_w(self) -> float | None: ...
    def sm_clock_mhz(self) -> int | None: ...
    def temperature_c(self) -> float | None: ...
    def clock_event_reasons(self) -> int | None: ...
    def compute_mode(self) -> str | None: ...
    def process_count(self) -> int | None: ...
    def details(self) -> dict: ...


def busy_span_us(spans: list[tuple[float, float]]) -> float:
    """Time covered by at least one of the (start, end) intervals: the device's busy time, kernels on several
    streams that overlap counted once."""
    busy, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        busy += b - max(a, end)
        end = b
    return busy


def decode_reasons(bits: int | None) -> list[str]:
    return [name for bit, name in CLOCK_EVENT_BITS.items() if int(bits or 0) & bit]


# --------------------------------------------------------------------------------------------------- CPU

class CpuBackend:
    kind = "cpu"
    ceiling_gemm_n: int | None = None     # sized to the CPU's speed (probe._gemm_size)
    ceiling_copy_bytes = 64 << 20

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.torch_device = "cpu"

    def synchronize(self) -> None:
        return None

    def event_timer(self) -> EventTimer | None:
        return None

    def reset_memory(self) -> None:
        gc.collect()

    def reset_peak(self) -> None:
        return None

    def peak_memory(self) -> dict:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        return {"peak_bytes": None, "peak_reserved_bytes": None, "process_max_rss_bytes": rss,
                "reason": "CPU: torch does not track peak allocations; the process's max RSS is given instead"}

    def is_oom(self, exc: BaseException) -> bool:
        return out_of_memory_reason(exc) is not None

    def nvml(self) -> tuple[Nvml | None, str | None]:
        return None, "not applicable: CPU run (no NVML telemetry)"

    def profile_kernels(self, step: Callable[[], object]) -> dict:
        return {"kernels": None, "kernel_time_s": None, "reason": "CPU: no kernel launches to count"}

    def supports_fused_adamw(self) -> bool:
        return False

    def properties(self) -> dict:
        return {}


# -------------------------------------------------------------------------------------------------- CUDA

class _CudaEvents:
    def __init__(self, torch):
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> None:
        self._end.record()

    def elapsed_s(self) -> float:
        return self._start.elapsed_time(self._end) / 1e3  # elapsed_time is in milliseconds


def _safe(fn, *args, default=None):
    if fn is None:  # an older pynvml without the query
        return default
    try:
        return fn(*args)
    except Exception:
        return default


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


class RealNvml:
    """pynvml (nvidia-ml-py) queries for one GPU handle."""

    def __init__(self, pynvml, index: int):
        self._p = pynvml
        self._h = pynvml.nvmlDeviceGetHandleByIndex(index)

    def energy_mj(self):
        return _safe(getattr(self._p, "nvmlDeviceGetTotalEnergyConsumption", None), self._h)

    def power_w(self):
        mw = _safe(getattr(self._p, "nvmlDeviceGetPowerUsage", None), self._h)
        return mw / 1000 if mw is not None else None

    def sm_clock_mhz(self):
        return _safe(getattr(self._p, "nvmlDeviceGetClockInfo", None), self._h, getattr(self._p, "NVML_CLOCK_SM", 1))

    def temperature_c(self):
        return _safe(getattr(self._p, "nvmlDeviceGetTemperature", None), self._h, getattr(self._p, "NVML_TEMPERATURE_GPU", 0))

    def clock_event_reasons(self):
        fn = getattr(self._p, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            self._p, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        return _safe(fn, self._h) if fn else None

    def compute_mode(self):
        mode = _safe(getattr(self._p, "nvmlDeviceGetComputeMode", None), self._h)
        return COMPUTE_MODES.get(mode, f"unknown ({mode})") if mode is not None else None

    def _processes(self) -> list[dict]:
        procs = []
        for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            for p in _safe(getattr(self._p, getter, None), self._h, default=[]) or []:
                procs.append({"pid": p.pid, "used_memory_bytes": getattr(p, "usedGpuMemory", None)})
        return procs

    def process_count(self):
        procs = _safe(getattr(self._p, "nvmlDeviceGetComputeRunningProcesses", None), self._h)
        return len(procs) if procs is not None else None

    def details(self) -> dict:
        p, h = self._p, self._h
        mem = _safe(getattr(p, "nvmlDeviceGetMemoryInfo", None), h)
        ecc_fn = getattr(p, "nvmlDeviceGetCurrentEccMode", None) or getattr(p, "nvmlDeviceGetEccMode", None)
        ecc = _safe(ecc_fn, h)
        mig = _safe(getattr(p, "nvmlDeviceGetMigMode", None), h)
        procs = self._processes()
        power_limit = _safe(getattr(p, "nvmlDeviceGetEnforcedPowerLimit", None), h)
        return {
            "nvml_name": _text(_safe(getattr(p, "nvmlDeviceGetName", None), h)),
            "uuid": _text(_safe(getattr(p, "nvmlDeviceGetUUID", None), h)),
            "pci_bus_id": _text(getattr(_safe(getattr(p, "nvmlDeviceGetPciInfo", None), h), "busId", None)),
            "driver": _text(_safe(getattr(p, "nvmlSystemGetDriverVersion", None))),
            "nvml_memory_bytes": getattr(mem, "total", None),
            "sm_clock_mhz": self.sm_clock_mhz(),
            "memory_clock_mhz": _safe(getattr(p, "nvmlDeviceGetClockInfo", None), h, getattr(p, "NVML_CLOCK_MEM", 2)),
            "max_sm_clock_mhz": _safe(getattr(p, "nvmlDeviceGetMaxClockInfo", None), h, getattr(p, "NVML_CLOCK_SM", 1)),
            "max_memory_clock_mhz": _safe(getattr(p, "nvmlDeviceGetMaxClockInfo", None), h, getattr(p, "NVML_CLOCK_MEM", 2)),
            "power_limit_w": power_limit / 1000 if power_limit is not None else None,
            "temperature_c": self.temperature_c(),
            "persistence_mode": _safe(getattr(p, "nvmlDeviceGetPersistenceMode", None), h),
            "ecc_enabled": bool(ecc[0]) if isinstance(ecc, (list, tuple)) else ecc,
            "mig_enabled": bool(mig[0]) if isinstance(mig, (list, tuple)) else mig,
            "compute_mode": self.compute_mode(),
            "energy_counter_available": self.energy_mj() is not None,
            "gpu_processes": procs,
            "foreign_gpu_pids": sorted({q["pid"] for q in procs if q["pid"] != os.getpid()}),
        }


def _nvml_module():
    """(pynvml module initialised, None) or (None, reason). Never raises."""
    try:
        import pynvml  # noqa: PLC0415  (lazy on purpose)
    except Exception as exc:  # ImportError, or a broken install
        return None, f"pynvml not importable: {type(exc).__name__}: {exc}"
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return None, f"nvmlInit failed: {exc}"
    return pynvml, None


def nvml_index(pynvml, torch_index: int) -> int:
    """NVML index of torch's device ``torch_index``: NVML ignores CUDA_VISIBLE_DEVICES, so match by UUID, else
    by PCI domain/bus/device, else by CUDA_VISIBLE_DEVICES' digits."""
    import torch

    props = torch.cuda.get_device_properties(torch_index)
    uuid = str(getattr(props, "uuid", "") or "").lower()
    pci = tuple(getattr(props, k, None) for k in ("pci_domain_id", "pci_bus_id", "pci_device_id"))
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        nuuid = (_text(_safe(pynvml.nvmlDeviceGetUUID, h)) or "").lower()
        if uuid and nuuid.endswith(uuid):
            return i
        info = _safe(pynvml.nvmlDeviceGetPciInfo, h)
        if info is not None and None not in pci and (info.domain, info.bus, info.device) == pci:
            return i
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [v.strip() for v in visible.split(",")]
        if torch_index < len(ids) and ids[torch_index].isdigit():
            return int(ids[torch_index])
    return torch_index


class CudaBackend:
    kind = "cuda"
    ceiling_gemm_n = 8192                 # 1.1 TFLOP a product: ~1.4 ms on an H200, long enough for the events
    ceiling_copy_bytes = 1 << 30

    def __init__(self, device: str):
        import torch

        self._torch = torch
        self.device = self.torch_device = device
        self.index = int(device.split(":")[1]) if ":" in device else 0
        self._nvml: tuple | None = None

    def synchronize(self) -> None:
        self._torch.cuda.synchronize(self.device)

    def event_timer(self) -> EventTimer:
        return _CudaEvents(self._torch)

    def reset_memory(self) -> None:
        gc.collect()
        self._torch.cuda.synchronize(self.device)
        self._torch.cuda.empty_cache()  # before the reset: cached blocks of an earlier configuration are not ours
        self._torch.cuda.reset_peak_memory_stats(self.device)

    def reset_peak(self) -> None:
        self._torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory(self) -> dict:
        cuda = self._torch.cuda
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"peak_bytes": cuda.max_memory_allocated(self.device),
                "peak_reserved_bytes": cuda.max_memory_reserved(self.device), "process_max_rss_bytes": rss,
                "reason": None}

    def is_oom(self, exc: BaseException) -> bool:
        return out_of_memory_reason(exc) is not None

    def nvml(self):
        if self._nvml is None:
            mod, reason = _nvml_module()
            if mod is None:
                self._nvml = (None, reason)
            else:
                try:
                    self._nvml = (RealNvml(mod, nvml_index(mod, self.index)), None)
                except Exception as exc:
                    self._nvml = (None, f"NVML handle failed: {exc}")
        return self._nvml

    def profile_kernels(self, step: Callable[[], object]) -> dict:
        torch = self._torch
        from torch.profiler import ProfilerActivity, profile

        try:
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                step()
                self.synchronize()
            kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        except Exception as exc:  # the profiler is optional telemetry: never fail the configuration for it
            return {"kernels": None, "kernel_time_s": None,
                    "reason": f"torch.profiler could not see kernels: {type(exc).__name__}: {exc}"[:300]}
        if not kernels:
            return {"kernels": None, "kernel_time_s": None, "reason": "torch.profiler saw no CUDA kernels (CUPTI unavailable?)"}
        spans = [(e.time_range.start, e.time_range.end) for e in kernels]
        return {"kernels": len(kernels), "kernel_time_s": busy_span_us(spans) / 1e6, "reason": None}

    def supports_fused_adamw(self) -> bool:
        return True

    def properties(self) -> dict:
        """torch's view of the device (creates this process's CUDA context: call it in a worker, not the parent)."""
        torch = self._torch
        props = torch.cuda.get_device_properties(self.index)
        return {"name": props.name, "index": self.index, "count": torch.cuda.device_count(),
                "memory_bytes": props.total_memory, "multiprocessors": props.multi_processor_count,
                "compute_capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


@functools.lru_cache(maxsize=None)
def _default_factory(device: str):
    """One backend per device and process (a CUDA backend keeps its NVML handle)."""
    return CudaBackend(device) if device.startswith("cuda") else CpuBackend(device)


# Tests replace this (monkeypatch) with a factory returning a fake for "cuda" devices.
BACKEND_FACTORY: Callable[[str], object] = _default_factory


def backend(device: str):
    """The backend of a resolved device string ('cpu' or 'cuda:N')."""
    return BACKEND_FACTORY(device)


def cuda_device_count() -> int:
    """How many CUDA devices torch sees (0 without CUDA). Creates no CUDA context (cudaGetDeviceCount)."""
    if BACKEND_FACTORY is not _default_factory and hasattr(BACKEND_FACTORY, "device_count"):
        return BACKEND_FACTORY.device_count
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
