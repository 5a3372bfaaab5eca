"""The timed window every workload shares: `measure_in_window` runs `timing.measure` with the device's event timer
inside a `Window` (NVML telemetry, the host's CPU use and the device's peak memory), charges the window's energy
to the timed calls (`round_telemetry`), and `telemetry_warnings` words what the window saw (a busy host,
throttling, other processes on the GPU). `ops_of` counts the operator calls of one extra, untimed call.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

from llmecon.measure.commcount import collective_counter
from llmecon.measure.device import THROTTLES
from llmecon.measure.opcount import count_ops
from llmecon.measure.probe import HostCpuMonitor, TelemetrySampler
from llmecon.measure.timing import measure
from llmecon.records.schema import Knobs


class Window:
    """What brackets one round's timed window besides the clock: NVML telemetry, the host's CPU use and the
    device's peak memory. ``pause()`` ... ``resume()`` leaves untimed work inside the window (decode's prompt re-prefill) out of
    all three: the energy counter and the clock are read on both sides of it, and the peak memory reached before
    it is kept while the peak statistic is reset after it."""

    def __init__(self, be):
        self.be = be
        self.sampler = TelemetrySampler(be.device)
        self.host = HostCpuMonitor()
        self.peaks: list[float] = []

    def start(self) -> None:
        self.be.reset_peak()
        self.sampler.start()
        self.host.start()

    def _keep_peak(self) -> None:
        peak = self.be.peak_memory().get("peak_bytes")
        if peak is not None:
            self.peaks.append(peak)

    def pause(self) -> None:
        self.sampler.pause()
        self._keep_peak()

    def resume(self) -> None:
        self.be.reset_peak()
        self.sampler.resume()

    def stop(self) -> tuple[dict, dict, dict]:
        """(host CPU use, NVML summary, memory) of the window."""
        host = self.host.stop()
        tele = self.sampler.stop()
        self._keep_peak()
        memory = self.be.peak_memory()
        memory["peak_bytes"] = max(self.peaks) if self.peaks else memory.get("peak_bytes")
        return host, tele, memory


def round_telemetry(summary: dict, m, tokens_per_step: int) -> dict:
    """The round's energy: the mean power over the window (paused parts left out) times the summed sample time,
    so energy is charged to tokens through the timed seconds only, the same way for every phase. Energy per
    token is decided over all rounds (rounds.combine: only from MIN_ENERGY_WINDOW_S of window or more)."""
    out = dict(summary)
    out["window_energy_j"] = summary.get("energy_j")
    out["tokens_in_samples"] = m.n_samples * tokens_per_step
    out["energy_j"] = None
    if summary.get("mean_power_w") is not None and m.n_samples:
        out["energy_j"] = summary["mean_power_w"] * sum(m.samples_s)
        out["energy_method"] = ("energy_j = mean_power_w (window, untimed re-prefills excluded) x sum(samples_s): "
                                "the energy of the timed calls; window_energy_j is the window's counter delta")
    return out


def telemetry_warnings(out: dict, kind: str) -> None:
    """Warn `host_busy:<n>_other_cores` when other processes used the CPU during the timed window; on a GPU,
    `no_clock_telemetry` when NVML did not answer, `throttled:<reasons>` when the clocks were held back by heat
    or a hardware slowdown (holding the power limit is not throttling: the telemetry's power_capped_fraction
    says how often it happened), and `gpu_shared:<n>_processes` when NVML saw other processes on the GPU while
    the worker ran (the bench's parent holds no CUDA context, so the worker should be alone)."""
    warnings = out["round"]["validity"]["warnings"]
    tele = out["telemetry"]
    if (tele.get("host_cpu") or {}).get("busy"):
        warnings.append(f"host_busy:{tele['host_cpu']['other_cpu_cores']:.2f}_other_cores")
    if kind != "cuda":
        return
    if not tele.get("n_samples"):
        warnings.append("no_clock_telemetry")
    seen = sorted(set(tele.get("throttle_reasons") or []) & set(THROTTLES))
    if seen:
        warnings.append("throttled:" + ",".join(seen))
    if (tele.get("gpu_processes_max") or 0) > 1:
        warnings.append(f"gpu_shared:{tele['gpu_processes_max'] - 1}_other_processes")


def measure_in_window(fn, be, knobs: Knobs, tokens_per_step: int, window: Window, on_start=None, on_sample=None,
                       self_timed: bool = False):
    def start():
        if on_start is not None:
            on_start()
        window.start()

    m = measure(fn, knobs, sync=be.synchronize, on_start=start, on_sample=on_sample, timer=be.event_timer(),
                self_timed=self_timed)
    host_cpu, summary, memory = window.stop()
    tele = round_telemetry(summary, m, tokens_per_step)
    tele["host_cpu"] = host_cpu
    return m, tele, memory


# Where `ops_of` puts the collectives its counted step issued, when a distributed run asks (`collectives_into`).
_COLLECTIVES: contextvars.ContextVar[list | None] = contextvars.ContextVar("llmecon_collectives", default=None)


@contextlib.contextmanager
def collectives_into(sink: list) -> Iterator[None]:
    """Inside, the step `ops_of` counts also has its collectives counted (measure.commcount), appended to ``sink``."""
    token = _COLLECTIVES.set(sink)
    try:
        yield
    finally:
        _COLLECTIVES.reset(token)


def ops_of(step, be, compile: bool, count: bool) -> dict | None:
    """The operator calls of one extra, untimed call of ``step`` (None unless ``count``); under `collectives_into`,
    that call's collectives too."""
    if not count:
        return None
    sink = _COLLECTIVES.get()
    if sink is None:
        return count_ops(step, be, compiled=compile)
    counter = collective_counter()
    with counter:
        ops = count_ops(step, be, compiled=compile)
    sink.append(counter.counts())
    return ops
