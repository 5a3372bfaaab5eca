"""What machine are we on: the device, its state, its own ceilings, and telemetry during a run.

- `resolve_device("auto"|"cpu"|"cuda"|"cuda:N")` picks the device or raises UserError (before any
  model is built) when CUDA is asked for and absent.
- `probe_device(device)`: name, count, memory, driver, CUDA, clocks, power limit, ECC, MIG and the
  other processes on the GPU (NVML); on CPU the model name from /proc/cpuinfo and torch's thread
  count. The name is resolved to the hardware sheet by exact match only; otherwise hardware_id is
  null with the reason, and no datasheet MFU is ever computed against another device's peak.
- `measure_ceilings(device, dtype)`: the best large-GEMM FLOP/s in the run's dtype and the
  device-memory copy bandwidth (bytes read + bytes written), measured once per run with the same
  `measure()` used for every other number.
- `TelemetrySampler`: a thread sampling NVML clocks, power, temperature and throttle reasons during
  the timed window, plus the energy counter's delta where the GPU has one.
- `HostCpuMonitor`: how much CPU *other* processes used during the timed window (Linux /proc). On a
  shared host a busy neighbour stalls torch's OpenMP threads (a 1 ms CPU forward can take 100 ms),
  so the record says so.

NVML is imported lazily (pynvml, from nvidia-ml-py). If it is missing or fails, telemetry is null
with the reason and the run continues.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any

from llmecon.measure.models import torch_dtype
from llmecon.measure.timing import measure
from llmecon.costmodel.hardware import match_device_name
from llmecon.errors import UserError
from llmecon.records.environment import cpu_model
from llmecon.records.schema import Knobs

# NVML throttle-reason bits (nvml.h: nvmlClocksEventReason*); GpuIdle (0x1) is ignored on purpose.
THROTTLE_BITS = {
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda:0' if CUDA is usable else 'cpu'; 'cuda' -> 'cuda:0'. UserError if unusable."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        index = 0 if device == "cuda" else device.split(":", 1)[1]
        if not str(index).isdigit():
            raise UserError(f"--device {device}: expected cuda:N with N a number")
        if int(index) >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return f"cuda:{int(index)}"
    raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


# ---------------------------------------------------------------------------------------------- NVML

def nvml():
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


def _safe(fn, *args, default=None):
    try:
        return fn(*args)
    except Exception:
        return default


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _nvml_details(pynvml, index: int) -> dict:
    h = pynvml.nvmlDeviceGetHandleByIndex(index)
    mem = _safe(pynvml.nvmlDeviceGetMemoryInfo, h)
    ecc = _safe(pynvml.nvmlDeviceGetCurrentEccMode if hasattr(pynvml, "nvmlDeviceGetCurrentEccMode") else pynvml.nvmlDeviceGetEccMode, h)
    mig = _safe(pynvml.nvmlDeviceGetMigMode, h)
    clk = lambda kind: _safe(pynvml.nvmlDeviceGetClockInfo, h, kind)  # noqa: E731
    maxclk = lambda kind: _safe(pynvml.nvmlDeviceGetMaxClockInfo, h, kind)  # noqa: E731
    procs = []
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for p in _safe(getattr(pynvml, getter), h, default=[]) or []:
            procs.append({"pid": p.pid, "used_memory_bytes": getattr(p, "usedGpuMemory", None)})
    power_limit = _safe(pynvml.nvmlDeviceGetEnforcedPowerLimit, h)
    energy = _safe(pynvml.nvmlDeviceGetTotalEnergyConsumption, h)
    return {
        "nvml_name": _text(_safe(pynvml.nvmlDeviceGetName, h)),
        "uuid": _text(_safe(pynvml.nvmlDeviceGetUUID, h)),
        "pci_bus_id": _text(getattr(_safe(pynvml.nvmlDeviceGetPciInfo, h), "busId", None)),
        "driver": _text(_safe(pynvml.nvmlSystemGetDriverVersion)),
        "nvml_memory_bytes": getattr(mem, "total", None),
        "sm_clock_mhz": clk(pynvml.NVML_CLOCK_SM),
        "memory_clock_mhz": clk(pynvml.NVML_CLOCK_MEM),
        "max_sm_clock_mhz": maxclk(pynvml.NVML_CLOCK_SM),
        "max_memory_clock_mhz": maxclk(pynvml.NVML_CLOCK_MEM),
        "power_limit_w": power_limit / 1000 if power_limit is not None else None,
        "temperature_c": _safe(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU),
        "persistence_mode": _safe(pynvml.nvmlDeviceGetPersistenceMode, h),
        "ecc_enabled": bool(ecc[0]) if isinstance(ecc, (list, tuple)) else ecc,
        "mig_enabled": bool(mig[0]) if isinstance(mig, (list, tuple)) else mig,
        "energy_counter_available": energy is not None,
        "gpu_processes": procs,
        "foreign_gpu_pids": sorted({p["pid"] for p in procs if p["pid"] != os.getpid()}),
    }


def probe_device(device: str) -> dict:
    """The run's `device` block. `device` is a resolved device string ('cpu' or 'cuda:N')."""
    import torch

    kind = device_kind(device)
    info: dict[str, Any] = {"kind": kind, "device": device, "torch_threads": torch.get_num_threads(),
                            "cpu_model": cpu_model() or "unknown CPU", "cpu_count": os.cpu_count()}
    if kind == "cpu":
        info.update(name=info["cpu_model"], count=1, memory_bytes=_cpu_memory_bytes(),
                    telemetry_available=False, telemetry_reason="not applicable: CPU run (no NVML telemetry)")
    else:
        index = int(device.split(":")[1])
        props = torch.cuda.get_device_properties(index)
        info.update(
            name=props.name, index=index, count=torch.cuda.device_count(), memory_bytes=props.total_memory,
            multiprocessors=props.multi_processor_count, compute_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        mod, reason = nvml()
        if mod is None:
            info.update(telemetry_available=False, telemetry_reason=reason)
        else:
            try:
                info.update(_nvml_details(mod, _nvml_index(mod, index)))
                info.update(telemetry_available=True, telemetry_reason=None)
            except Exception as exc:
                info.update(telemetry_available=False, telemetry_reason=f"NVML query failed: {exc}")
    accel, reason = match_device_name(info["name"])
    info["hardware_id"] = accel.id if accel is not None else None
    info["hardware_match_reason"] = reason
    return info


def _nvml_index(pynvml, torch_index: int) -> int:
    """NVML index of torch's device `torch_index`: NVML ignores CUDA_VISIBLE_DEVICES, so match by
    UUID (torch's props.uuid), else by PCI domain/bus/device, else by CUDA_VISIBLE_DEVICES' digits."""
    import torch

    props = torch.cuda.get_device_properties(torch_index)
    uuid = str(getattr(props, "uuid", "") or "").lower()
    pci = tuple(getattr(props, k, None) for k in ("pci_domain_id", "pci_bus_id", "pci_device_id"))
    count = pynvml.nvmlDeviceGetCount()
    for i in range(count):
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


def _cpu_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# ----------------------------------------------------------------------------------------- ceilings

def _gemm_size(device: str, dtype) -> int:
    """Square GEMM size: 8192 on a GPU; on CPU the size whose one product takes ~0.1-0.3 s."""
    import torch

    if device_kind(device) == "cuda":
        return 8192
    n = 256
    while n < 4096:
        a = torch.randn(n, n, dtype=dtype)
        t0 = time.perf_counter()
        torch.mm(a, a)
        dt = time.perf_counter() - t0
        if dt >= 0.05:
            break
        n *= 2
    return n


def measure_ceilings(device: str, dtype: str, *, min_time_s: float | None = None) -> dict:
    """{gemm_flops_per_s, gemm_shape, copy_bytes_per_s, copy_bytes, ...}: the device's own ceilings.

    GEMM: the best (minimum) time of several n x n x n products on random data, 2 n^3 FLOPs each.
    Copy: a large tensor `copy_` (fp32 on CPU, 1 GiB on a GPU), counting 2 x size (read + write).
    """
    import torch

    kind = device_kind(device)
    tdtype = torch_dtype(dtype)
    prev_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    sync = (lambda: torch.cuda.synchronize(device)) if kind == "cuda" else None
    try:
        n = _gemm_size(device, tdtype)
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, dtype=tdtype, generator=g)
        b = torch.randn(n, n, device=device, dtype=tdtype, generator=g)
        c = torch.empty(n, n, device=device, dtype=tdtype)
        gemm = measure(lambda: torch.mm(a, b, out=c), Knobs(
            warmup_iters=3, min_iters=5, min_time_s=min_time_s if min_time_s is not None else (0.5 if kind == "cuda" else 0.3),
            max_time_s=5.0 if kind == "cuda" else 3.0), sync=sync)
        best_gemm = min(gemm.samples_s)
        a = b = c = None  # free before the copy allocates (the lambda above holds the names)
        copy_bytes = (1 << 30) if kind == "cuda" else (64 << 20)
        src = torch.empty(copy_bytes // 4, device=device, dtype=torch.float32).uniform_()
        dst = torch.empty_like(src)
        cp = measure(lambda: dst.copy_(src), Knobs(warmup_iters=3, min_iters=10, min_time_s=0.2, max_time_s=3.0),
                     sync=sync)
        best_copy = min(cp.samples_s)
        src = dst = None
        if kind == "cuda":
            torch.cuda.empty_cache()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev_tf32
    return {
        "gemm_flops_per_s": 2.0 * n**3 / best_gemm,
        "gemm_shape": [n, n, n],
        "gemm_dtype": dtype,
        "gemm_best_s": best_gemm,
        "gemm_median_s": statistics.median(gemm.samples_s),
        "gemm_samples": len(gemm.samples_s),
        "copy_bytes_per_s": 2.0 * copy_bytes / best_copy,
        "copy_bytes": copy_bytes,
        "copy_best_s": best_copy,
        "copy_samples": len(cp.samples_s),
        "statistic": "best of samples (GEMM: 2*n^3 FLOPs; copy: bytes read + bytes written)",
        "torch_threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------------------------------- telemetry

class TelemetrySampler:
    """Sample NVML during the timed window: `with TelemetrySampler(device) as t: ...; t.summary()`.

    On CPU, or without NVML, it samples nothing and the summary is nulls with the reason.
    """

    def __init__(self, device: str, interval_s: float = 0.1):
        self.device = device
        self.interval_s = interval_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = None
        self._pynvml = None
        self.reason: str | None = None
        self._energy0 = self._energy1 = None
        self._t0 = self._t1 = None
        if device_kind(device) != "cuda":
            self.reason = "not applicable: CPU run (no NVML telemetry)"
            return
        mod, reason = nvml()
        if mod is None:
            self.reason = reason
            return
        try:
            self._handle = mod.nvmlDeviceGetHandleByIndex(_nvml_index(mod, int(device.split(":")[1])))
            self._pynvml = mod
        except Exception as exc:
            self.reason = f"NVML handle failed: {exc}"

    def _energy_mj(self):
        return _safe(self._pynvml.nvmlDeviceGetTotalEnergyConsumption, self._handle)

    def _sample(self) -> dict:
        p, h = self._pynvml, self._handle
        power = _safe(p.nvmlDeviceGetPowerUsage, h)
        reasons_fn = getattr(p, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            p, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        return {
            "t": time.perf_counter(),
            "sm_clock_mhz": _safe(p.nvmlDeviceGetClockInfo, h, p.NVML_CLOCK_SM),
            "power_w": power / 1000 if power is not None else None,
            "temp_c": _safe(p.nvmlDeviceGetTemperature, h, p.NVML_TEMPERATURE_GPU),
            "reasons": _safe(reasons_fn, h) if reasons_fn else None,
        }

    def _loop(self):
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self.interval_s)

    def start(self) -> "TelemetrySampler":
        if self._pynvml is None:
            return self
        self._t0 = time.perf_counter()
        self._energy0 = self._energy_mj()
        self._thread = threading.Thread(target=self._loop, name="llmecon-telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            self._thread = None
            self.samples.append(self._sample())
            self._energy1 = self._energy_mj()
            self._t1 = time.perf_counter()
        return self.summary()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def summary(self) -> dict:
        out = {"energy_j": None, "mean_power_w": None, "max_temp_c": None, "sm_clock_mhz_median": None,
               "sm_clock_mhz_min": None, "throttle_reasons": [], "n_samples": len(self.samples),
               "window_s": None, "reason": self.reason}
        if self._pynvml is None or not self.samples:
            if out["reason"] is None:
                out["reason"] = "telemetry not sampled"
            return out
        window = (self._t1 or time.perf_counter()) - (self._t0 or time.perf_counter())
        out["window_s"] = window
        clocks = [s["sm_clock_mhz"] for s in self.samples if s["sm_clock_mhz"] is not None]
        powers = [s["power_w"] for s in self.samples if s["power_w"] is not None]
        temps = [s["temp_c"] for s in self.samples if s["temp_c"] is not None]
        if clocks:
            out["sm_clock_mhz_median"] = statistics.median(clocks)
            out["sm_clock_mhz_min"] = min(clocks)
        if temps:
            out["max_temp_c"] = max(temps)
        seen = 0
        for s in self.samples:
            seen |= int(s["reasons"] or 0)
        out["throttle_reasons"] = [name for bit, name in THROTTLE_BITS.items() if seen & bit]
        if self._energy0 is not None and self._energy1 is not None and self._energy1 >= self._energy0 and window > 0:
            out["energy_j"] = (self._energy1 - self._energy0) / 1000.0
            out["mean_power_w"] = out["energy_j"] / window
            out["energy_source"] = "nvmlDeviceGetTotalEnergyConsumption"
        elif powers:
            out["mean_power_w"] = statistics.fmean(powers)
            out["energy_j"] = out["mean_power_w"] * window
            out["energy_source"] = "mean of nvmlDeviceGetPowerUsage samples x window"
        return out


# --------------------------------------------------------------------------------------- host CPU

def _proc_ticks() -> tuple[int, int] | None:
    """(busy ticks of all CPUs, ticks of this process) from /proc; None where /proc is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat", encoding="ascii") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy, int(own[11]) + int(own[12])  # utime + stime (fields 14 and 15 of stat)


class HostCpuMonitor:
    """CPU cores used by OTHER processes during a window: `m = HostCpuMonitor().start(); ...; m.stop()`.

    stop() returns {other_cpu_cores, window_s, busy, reason}; busy when others used more than half a
    core on average (the samples then measure a shared CPU; the record gets the warning host_busy).
    """

    BUSY_CORES = 0.5

    def __init__(self):
        self._t0 = self._ticks0 = None

    def start(self) -> "HostCpuMonitor":
        self._t0, self._ticks0 = time.perf_counter(), _proc_ticks()
        return self

    def stop(self) -> dict:
        ticks1, t1 = _proc_ticks(), time.perf_counter()
        if self._ticks0 is None or ticks1 is None or self._t0 is None:
            return {"other_cpu_cores": None, "window_s": None, "busy": False, "reason": "no /proc/stat on this host"}
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        window = t1 - self._t0
        others = ((ticks1[0] - self._ticks0[0]) - (ticks1[1] - self._ticks0[1])) / hz
        cores = max(0.0, others / window) if window > 0 else None
        return {"other_cpu_cores": cores, "window_s": window, "busy": bool(cores and cores > self.BUSY_CORES),
                "reason": None}
