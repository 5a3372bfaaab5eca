"""One `measure()` function: how one round of every number in a record is timed (docs/measuring.md §1-§4).

1. ``sync()``, then the **first (cold) call** is timed on its own and kept as ``first_call_s``; it is never
   a sample (it pays for compilation, autotuning, allocator growth).
2. **Warm-up** on the same callable, hence the same shapes: at least ``warmup_iters`` calls (the cold call
   does not count), stopping early at ``max_time_s``. The median warm-up call is the step time the cap scales
   with.
3. The **timed window**: each call is bracketed by the clock, with ``sync()`` after the call (the previous
   call ended with a sync, so the device is idle when the clock starts). Calls continue until ``min_iters``
   samples and ``min_time_s`` of summed sample time are reached **and** the median is precise enough: the
   relative half-width of its distribution-free 95 % interval (``stats.relative_ci_halfwidth``) at most
   ``target_rel_ci`` (checked each time the sample count has grown by a tenth, so the check stays cheap).
   A cap ends the window first: ``max_iters`` samples, or ``cap_s`` of wall clock, which is ``max_time_s``
   raised to ``CAP_STEPS x min_iters`` warm steps when those take longer, so a slow step still reaches its
   minimum count. This is nvbench's rule (a minimum count and time, then stop when the noise is low enough,
   with a timeout), with the median's interval in place of the relative standard deviation, which heavy
   tails inflate.
   With a device ``timer`` (CUDA events), each call is also bracketed by events on the device's stream, giving
   ``device_samples_s`` beside the host samples: the stream's span of the step, kernels plus the gaps between
   them while the host was still launching (so on a launch-bound step it is close to the host time; the
   kernels' own busy time comes from the profiler, measure.opcount).
   A **self-timed** callable (``self_timed=True``) times its own parts and returns its seconds: that value is the
   sample (and the cold call's and warm-up's time) in place of the clock around the call, so a sample is exactly
   the sum of the parts it timed (generate: time to first token + each decode step), without the call's own
   bookkeeping. The clock and ``sync()`` still bracket the call, for the window's cap and the device timer.
4. **Statistics and verdict** on the raw samples: ``stats.summarize`` (mean, median, IQR, p10, p90; an invalid
   measurement when a cap hit before a minimum; the warning ``imprecise`` when it hit before the target). The
   round's mean is what the record's estimate is built from (throughput is work over time, stalls included);
   the median is what the stopping rule pins.

A round is one call of ``measure()``; the worker interleaves the rounds of a model's configurations.

5. **Lockstep** (distributed runs): every rank of a data- or tensor-parallel step must make the same number of
   calls, or the ones that stop early leave the others waiting in a collective. Inside ``lockstep(agree)`` each
   decision (another warm-up call? another sample?) is agreed with the peers, outside the timed region: the window
   stops when a rank hits a cap, or when every rank has met its minimums and precision (measure.distributed).
Telemetry stays outside this module: a caller passes ``on_start`` (called after warm-up, right before the
timed window opens, device idle) and ``on_sample(index, seconds)`` (called after each timed call, outside the
timed region). Exceptions from ``fn`` (an OOM, say) propagate untouched: the caller turns them into a status.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

from llmecon.records.schema import Knobs
from llmecon.stats import Validity, median_ci, quantile, relative_ci_halfwidth, summarize

# The defaults, written once: per device kind (chosen by measurement: benchmarks/noise.py). A CPU step of a
# small model takes a millisecond and the host is noisy, so short rounds and several of them; a GPU step may
# take a second, so longer ones.
DEFAULT_KNOBS = {
    "cpu": Knobs(warmup_iters=2, min_iters=10, min_time_s=0.2, max_time_s=2.0, rounds=5, target_rel_ci=0.02),
    "cuda": Knobs(warmup_iters=3, min_iters=10, min_time_s=0.5, max_time_s=10.0, rounds=5, target_rel_ci=0.01),
}
CAP_STEPS = 2  # the window's cap allows at least this many times min_iters warm steps

# agree(satisfied, cap) -> (every rank satisfied, the cap any rank hit or None): set by `lockstep`
Agree = Callable[[bool, "str | None"], "tuple[bool, str | None]"]
_AGREE: contextvars.ContextVar[Agree | None] = contextvars.ContextVar("llmecon_lockstep", default=None)


@contextlib.contextmanager
def lockstep(agree: Agree | None) -> Iterator[None]:
    """Every `measure()` inside agrees each decision with its peers through ``agree`` (None: alone)."""
    token = _AGREE.set(agree)
    try:
        yield
    finally:
        _AGREE.reset(token)


def _alone(satisfied: bool, cap: str | None) -> tuple[bool, str | None]:
    return satisfied, cap


@dataclass(frozen=True)
class Measurement:
    """One round: raw samples of one timed callable and the statistics derived from them (seconds)."""

    samples_s: tuple[float, ...]
    first_call_s: float
    warmup_iters: int
    n_samples: int
    total_s: float  # wall clock of the timed window (samples plus hook and loop overhead)
    stop: str       # "precision", "minimums" (no target), "max_time" or "max_iters"
    cap_s: float
    mean_s: float | None
    median_s: float | None
    ci_low_s: float | None
    ci_high_s: float | None
    iqr_s: float | None
    validity: Validity
    device_samples_s: tuple[float, ...] | None = None  # CUDA events around each timed call; None on a CPU

    def to_dict(self) -> dict:
        """The record's round block (schema.RoundBlock): plain lists and dicts, ready for JSON."""
        out = asdict(self)
        out["samples_s"] = list(self.samples_s)
        out["device_samples_s"] = list(self.device_samples_s) if self.device_samples_s is not None else None
        out["validity"] = self.validity.to_dict()
        del out["iqr_s"]  # derived; the loader recomputes every statistic from the samples
        return out


def measure(fn: Callable[[], object], knobs: Knobs = DEFAULT_KNOBS["cuda"], *,
            sync: Callable[[], object] | None = None, clock: Callable[[], float] = time.perf_counter,
            on_start: Callable[[], object] | None = None,
            on_sample: Callable[[int, float], object] | None = None, timer=None,
            self_timed: bool = False) -> Measurement:
    """Time ``fn()`` honestly (see the module docstring for the exact procedure).

    ``sync`` waits for the device (``torch.cuda.synchronize``; None on CPU). ``clock`` returns seconds (a
    fake one in tests). ``timer`` (measure.device.EventTimer, reused for every call) adds the device's own clock
    for each timed call. ``self_timed``: ``fn()`` returns its own seconds, which are the sample (module
    docstring). A cap below a minimum is allowed and yields an invalid measurement, which is the point of the
    verdict.

    >>> m = measure(lambda: sum(range(1000)), Knobs(warmup_iters=1, min_iters=5, min_time_s=0.0, max_time_s=1.0))
    >>> m.n_samples >= 5 and m.validity.valid
    True
    """
    sync = sync or (lambda: None)
    agree = _AGREE.get() or _alone

    def seconds(result, t0: float) -> float:
        return float(result) if self_timed else clock() - t0

    sync()
    start = clock()
    result = fn()
    sync()
    first_call_s = seconds(result, start)

    warm: list[float] = []
    warm_start = clock()
    while True:
        done = not (len(warm) < knobs.warmup_iters and clock() - warm_start < knobs.max_time_s)
        if agree(False, "max_time" if done else None)[1] is not None:  # any rank done warming up: all are
            break
        t0 = clock()
        result = fn()
        sync()
        warm.append(seconds(result, t0))
    step_s = quantile(sorted(warm), 0.5) if warm else first_call_s
    cap_s = max(knobs.max_time_s, CAP_STEPS * knobs.min_iters * max(step_s, 0.0))

    if on_start is not None:
        on_start()
    samples: list[float] = []
    device_samples: list[float] | None = [] if timer is not None else None
    window_start = clock()
    timed = 0.0
    next_check = knobs.min_iters
    satisfied: str | None = None  # "minimums" or "precision" once this rank's stopping rule is met
    while True:
        if satisfied is None and len(samples) >= knobs.min_iters and timed >= knobs.min_time_s:
            if knobs.target_rel_ci is None:
                satisfied = "minimums"
            elif len(samples) >= next_check:
                next_check = max(len(samples) + 1, math.ceil(len(samples) * 1.1))
                width = relative_ci_halfwidth(samples)
                if width is not None and width <= knobs.target_rel_ci:
                    satisfied = "precision"
        cap = ("max_iters" if len(samples) >= knobs.max_iters
               else "max_time" if clock() - window_start >= cap_s else None)
        everyone, cap = agree(satisfied is not None, cap)
        if everyone and satisfied is not None:
            stop = satisfied
            break
        if cap is not None:
            stop = cap
            break
        t0 = clock()
        if timer is not None:
            timer.start()
            result = fn()
            timer.stop()
        else:
            result = fn()
        sync()
        dt = seconds(result, t0)
        samples.append(dt)
        if timer is not None:
            device_samples.append(timer.elapsed_s())
        timed += dt
        if on_sample is not None:
            on_sample(len(samples) - 1, dt)
    total_s = clock() - window_start

    stats, validity = summarize(samples, min_iters=knobs.min_iters, min_time_s=knobs.min_time_s)
    if validity.valid and knobs.target_rel_ci is not None and stop != "precision":
        validity = Validity(True, (), (*validity.warnings, "imprecise"))
    ci = median_ci(samples) if validity.valid else None
    return Measurement(samples_s=tuple(samples), first_call_s=first_call_s, warmup_iters=len(warm),
                       n_samples=len(samples), total_s=total_s, stop=stop, cap_s=cap_s, mean_s=stats["mean_s"],
                       median_s=stats["median_s"], ci_low_s=ci[0] if ci else None, ci_high_s=ci[1] if ci else None,
                       iqr_s=stats["iqr_s"], validity=validity,
                       device_samples_s=tuple(device_samples) if device_samples is not None else None)
