"""What machine are we on: the device, its state, its own ceilings, and telemetry during a run.

- `resolve_device("auto"|"cpu"|"cuda"|"cuda:N")` picks the device or raises UserError (before any
  model is built) when CUDA is asked for and absent. It creates no CUDA context.
- `probe_device(device)`: name, count, memory, driver, CUDA, clocks, power limit, ECC, MIG, compute mode and
  the processes on the GPU (NVML); on CPU the model name from /proc/cpuinfo and torch's thread count. The
  name is resolved to the hardware sheet by exact match only; otherwise hardware_id is null with the reason,
  and no datasheet MFU is ever computed against another device's peak. On a GPU this creates a CUDA context:
  the bench calls it in a short-lived child process (runner.py), never in the parent that outlives it.
- `measure_ceilings(device, dtype)`: the best large-GEMM FLOP/s in the run's dtype and the device-memory
  copy bandwidth (bytes read + bytes written). On a GPU each sample is a batch of back-to-back calls timed
  with CUDA events (a lone call timed with the host clock pays a launch and a synchronisation: 3-5 % on a
  1 GiB copy); on a CPU each call is timed alone with the same `measure()` as every other number.
- `TelemetrySampler`: a thread sampling NVML clocks, power, temperature, clock-event reasons and the number of
  processes on the GPU during the timed window, plus the energy counter's delta; ``pause()`` / ``resume()``
  leave untimed work inside the window (decode's prompt re-prefill) out of the energy and the power.
- `HostCpuMonitor`: how much CPU *other* processes used during the timed window (Linux /proc). On a
  shared host a busy neighbour stalls torch's OpenMP threads (a 1 ms CPU forward can take 100 ms),
  so the record says so.

Every device-specific call goes through `measure.device` (a fake drives the CUDA branches in tests). NVML is
imported lazily (pynvml, from nvidia-ml-py); if it is missing or fails, telemetry is null with the reason and
the run continues.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any

from llmecon.costmodel.hardware import match_device_name
from llmecon.errors import UserError
from llmecon.measure.device import POWER_CAP, backend, cuda_device_count, decode_reasons
from llmecon.measure.models import torch_dtype
from llmecon.measure.timing import measure
from llmecon.records.environment import cpu_model
from llmecon.records.schema import Knobs



def resolve_device(device: str) -> str:
    """'auto' -> 'cuda:0' if CUDA is usable else 'cpu'; 'cuda' -> 'cuda:0'. UserError if unusable."""
    device = (device or "auto").strip().lower()
    count = cuda_device_count() if device != "cpu" else 0
    if device == "auto":
        return "cuda:0" if count else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not count:
            import torch

            raise UserError(f"--device {device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
        index = 0 if device == "cuda" else device.split(":", 1)[1]
        if not str(index).isdigit():
            raise UserError(f"--device {device}: expected cuda:N with N a number")
        if int(index) >= count:
            raise UserError(f"--device {device}: only {count} CUDA device(s) visible")
        return f"cuda:{int(index)}"
    raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def probe_device(device: str) -> dict:
    """The run's `device` block. `device` is a resolved device string ('cpu' or 'cuda:N')."""
    import torch

    be = backend(device)
    info: dict[str, Any] = {"kind": be.kind, "device": device, "torch_threads": torch.get_num_threads(),
                            "cpu_model": cpu_model() or "unknown CPU", "cpu_count": os.cpu_count()}
    if be.kind == "cpu":
        info.update(name=info["cpu_model"], count=1, memory_bytes=_cpu_memory_bytes(),
                    telemetry_available=False, telemetry_reason="not applicable: CPU run (no NVML telemetry)")
    else:
        info.update(be.properties())
        nv, reason = be.nvml()
        if nv is None:
            info.update(telemetry_available=False, telemetry_reason=reason)
        else:
            try:
                info.update(nv.details())
                info.update(telemetry_available=True, telemetry_reason=None)
            except Exception as exc:
                info.update(telemetry_available=False, telemetry_reason=f"NVML query failed: {exc}")
    accel, reason = match_device_name(info["name"])
    info["hardware_id"] = accel.id if accel is not None else None
    info["hardware_match_reason"] = reason
    return info


def _cpu_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# ----------------------------------------------------------------------------------------- ceilings

GPU_CALLS_PER_SAMPLE = {"gemm": 10, "copy": 20}  # back-to-back calls per event-timed sample (tens of ms)
GPU_SAMPLES = 10


def _gemm_size(be, dtype) -> int:
    """Square GEMM size: the backend's (8192 on a GPU); on CPU the size whose one product takes ~0.1-0.3 s."""
    import torch

    if be.ceiling_gemm_n:
        return be.ceiling_gemm_n
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


def back_to_back(be, fn, calls: int, samples: int, warmup: int = 3) -> list[float]:
    """Seconds per call: ``samples`` times, ``calls`` back-to-back calls of ``fn`` between two CUDA events."""
    for _ in range(warmup):
        fn()
    be.synchronize()
    out = []
    for _ in range(samples):
        timer = be.event_timer()
        timer.start()
        for _ in range(calls):
            fn()
        timer.stop()
        be.synchronize()
        out.append(timer.elapsed_s() / calls)
    return out


def measure_ceilings(device: str, dtype: str, *, min_time_s: float | None = None) -> dict:
    """{gemm_flops_per_s, gemm_shape, copy_bytes_per_s, copy_bytes, ...}: the device's own ceilings.

    GEMM: the best (minimum) time of n x n x n products on random data, 2 n^3 FLOPs each.
    Copy: a large tensor `copy_` (fp32; 64 MiB on a CPU, 1 GiB on a GPU), counting 2 x size (read + write).
    GPU: each sample is GPU_CALLS_PER_SAMPLE back-to-back calls between CUDA events; CPU: one call, host clock.
    """
    import torch

    be = backend(device)
    tdtype = torch_dtype(dtype)
    dev = be.torch_device
    prev_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    events = be.event_timer() is not None
    try:
        n = _gemm_size(be, tdtype)
        g = torch.Generator(device=dev).manual_seed(0)
        a = torch.randn(n, n, device=dev, dtype=tdtype, generator=g)
        b = torch.randn(n, n, device=dev, dtype=tdtype, generator=g)
        c = torch.empty(n, n, device=dev, dtype=tdtype)
        gemm_fn = lambda: torch.mm(a, b, out=c)  # noqa: E731
        if events:
            gemm_samples = back_to_back(be, gemm_fn, GPU_CALLS_PER_SAMPLE["gemm"], GPU_SAMPLES)
        else:
            gemm_samples = list(measure(gemm_fn, Knobs(
                warmup_iters=3, min_iters=5, min_time_s=min_time_s if min_time_s is not None else 0.3,
                max_time_s=3.0), sync=be.synchronize).samples_s)
        a = b = c = gemm_fn = None  # free before the copy allocates
        copy_bytes = be.ceiling_copy_bytes
        src = torch.empty(copy_bytes // 4, device=dev, dtype=torch.float32).uniform_()
        dst = torch.empty_like(src)
        copy_fn = lambda: dst.copy_(src)  # noqa: E731
        if events:
            copy_samples = back_to_back(be, copy_fn, GPU_CALLS_PER_SAMPLE["copy"], GPU_SAMPLES)
        else:
            copy_samples = list(measure(copy_fn, Knobs(warmup_iters=3, min_iters=10, min_time_s=0.2, max_time_s=3.0),
                                        sync=be.synchronize).samples_s)
        src = dst = copy_fn = None
        be.reset_memory()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev_tf32
    best_gemm, best_copy = min(gemm_samples), min(copy_samples)
    method = (f"CUDA events around {GPU_CALLS_PER_SAMPLE['gemm']} (GEMM) / {GPU_CALLS_PER_SAMPLE['copy']} (copy) "
              "back-to-back calls per sample" if events else "host clock around each call, synchronised")
    return {
        "gemm_flops_per_s": 2.0 * n**3 / best_gemm,
        "gemm_shape": [n, n, n],
        "gemm_dtype": dtype,
        "gemm_best_s": best_gemm,
        "gemm_median_s": statistics.median(gemm_samples),
        "gemm_samples": len(gemm_samples),
        "copy_bytes_per_s": 2.0 * copy_bytes / best_copy,
        "copy_bytes": copy_bytes,
        "copy_best_s": best_copy,
        "copy_samples": len(copy_samples),
        "statistic": "best of samples (GEMM: 2*n^3 FLOPs; copy: bytes read + bytes written)",
        "timing_method": method,
        "torch_threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------------------------------- telemetry

class TelemetrySampler:
    """Sample NVML during the timed window: `with TelemetrySampler(device) as t: ...; t.summary()`.

    ``pause()`` ... ``resume()`` brackets untimed work inside the window: its energy (the counter read on both
    sides), its time and the power samples taken during it are left out. On CPU, or without NVML, it samples
    nothing and the summary is nulls with the reason.
    """

    def __init__(self, device: str, interval_s: float = 0.1, *, clock=time.perf_counter):
        self.device, self.interval_s, self.clock = device, interval_s, clock
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._paused = False
        self.active_s = 0.0          # window time outside pauses
        self.excluded_s = 0.0        # time inside pauses
        self.active_energy_mj: float | None = 0.0
        self._seg_t = self._seg_e = None
        self.nv, self.reason = backend(device).nvml()

    def _sample(self) -> dict:
        nv = self.nv
        return {"t": self.clock(), "sm_clock_mhz": nv.sm_clock_mhz(), "power_w": nv.power_w(),
                "temp_c": nv.temperature_c(), "reasons": nv.clock_event_reasons(), "processes": nv.process_count(),
                "paused": self._paused}

    def _loop(self):
        while not self._stop.is_set():
            with self._lock:
                self.samples.append(self._sample())
            self._stop.wait(self.interval_s)

    def _open_segment(self):
        self._seg_t, self._seg_e = self.clock(), self.nv.energy_mj()

    def _close_segment(self):
        e1, t1 = self.nv.energy_mj(), self.clock()
        self.active_s += t1 - self._seg_t
        if self.active_energy_mj is not None and self._seg_e is not None and e1 is not None and e1 >= self._seg_e:
            self.active_energy_mj += e1 - self._seg_e
        else:
            self.active_energy_mj = None
        return t1

    def start(self) -> "TelemetrySampler":
        if self.nv is None:
            return self
        self._open_segment()
        self._thread = threading.Thread(target=self._loop, name="llmecon-telemetry", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        if self.nv is None or self._thread is None or self._paused:
            return
        with self._lock:
            self._pause_t = self._close_segment()
            self._paused = True

    def resume(self) -> None:
        if self.nv is None or self._thread is None or not self._paused:
            return
        with self._lock:
            self._paused = False
            self._open_segment()
            self.excluded_s += self._seg_t - self._pause_t

    def stop(self) -> dict:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            self._thread = None
            self.resume()
            self.samples.append(self._sample())
            self._close_segment()
        return self.summary()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def summary(self) -> dict:
        out = {"energy_j": None, "mean_power_w": None, "max_temp_c": None, "sm_clock_mhz_median": None,
               "sm_clock_mhz_min": None, "throttle_reasons": [], "power_capped_fraction": None,
               "gpu_processes_max": None, "n_samples": len(self.samples), "window_s": None,
               "excluded_s": None, "reason": self.reason}
        if self.nv is None or not self.samples:
            if out["reason"] is None:
                out["reason"] = "telemetry not sampled"
            return out
        out["window_s"], out["excluded_s"] = self.active_s, self.excluded_s
        live = [s for s in self.samples if not s["paused"]] or self.samples
        clocks = [s["sm_clock_mhz"] for s in live if s["sm_clock_mhz"] is not None]
        powers = [s["power_w"] for s in live if s["power_w"] is not None]
        temps = [s["temp_c"] for s in live if s["temp_c"] is not None]
        procs = [s["processes"] for s in live if s["processes"] is not None]
        if clocks:
            out["sm_clock_mhz_median"] = statistics.median(clocks)
            out["sm_clock_mhz_min"] = min(clocks)
        if temps:
            out["max_temp_c"] = max(temps)
        if procs:
            out["gpu_processes_max"] = max(procs)
        seen = [set(decode_reasons(s["reasons"])) for s in live if s["reasons"] is not None]
        out["throttle_reasons"] = sorted(set().union(*seen) - {POWER_CAP}) if seen else []
        out["power_capped_fraction"] = (sum(POWER_CAP in r for r in seen) / len(seen)) if seen else None
        if self.active_energy_mj is not None and self.active_s > 0:
            out["energy_j"] = self.active_energy_mj / 1000.0
            out["mean_power_w"] = out["energy_j"] / self.active_s
            out["energy_source"] = "nvmlDeviceGetTotalEnergyConsumption"
        elif powers:
            out["mean_power_w"] = statistics.fmean(powers)
            out["energy_j"] = out["mean_power_w"] * self.active_s
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
