"""One `measure()` function: how every number in a record is timed.

The procedure (DESIGN.md "Measuring honestly", measurement-validity.md §1.A-1.D):

1. ``sync()``, then the **first (cold) call** is timed on its own and kept as ``first_call_s``; it is
   never a sample (it pays for compilation, autotuning, allocator growth).
2. **Warm-up** on the same callable, hence the same shapes: at least ``warmup_iters`` calls and at
   least ``warmup_s`` seconds (the cold call counts toward neither), stopping early at ``max_time_s``.
3. The **timed window**: each call is bracketed by the clock, with ``sync()`` after the call (the
   previous call ended with a sync, so the device is idle when the clock starts). Calls continue
   until BOTH ``min_iters`` samples and ``min_time_s`` of summed sample time are reached, or a cap
   hits first: ``max_iters`` samples or ``max_time_s`` of wall clock in the window.
4. **Statistics** on the raw samples: median, IQR (p75 - p25), p10, p90; quantiles interpolate
   linearly (numpy's default). One sample has no spread: IQR and percentiles are None, never 0.
5. A **verdict**: ``valid`` is False with reasons ``min_iterations_not_met``, ``min_duration_not_met``
   (the cap hit first), ``no_samples``, ``non_finite_sample`` or ``non_positive_sample``; warnings
   ``single_sample``, ``noisy`` (IQR/median > 10 %) or ``very_noisy`` (> 25 %).

Telemetry stays outside this module: a caller that samples NVML passes ``on_start`` (called after
warm-up, right before the timed window opens, device idle) and ``on_sample(index, seconds)`` (called
after each timed call, outside the timed region); the window closes when ``measure`` returns.
Exceptions from ``fn`` (an OOM, say) propagate untouched: the caller turns them into a status.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

from llmecon.errors import require_positive

NOISY_IQR_RATIO = 0.10  # torch.utils.benchmark's warning threshold
VERY_NOISY_IQR_RATIO = 0.25  # ... and its "significant environmental influence" threshold


@dataclass(frozen=True)
class Validity:
    """The verdict on one measurement: invalid rows carry reasons, valid ones may carry warnings."""

    valid: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Measurement:
    """Raw samples of one timed callable and the statistics derived from them (seconds)."""

    samples_s: tuple[float, ...]
    first_call_s: float
    warmup_iters: int
    n_samples: int
    total_s: float  # wall clock of the timed window (samples plus hook and loop overhead)
    median_s: float | None
    iqr_s: float | None
    p10_s: float | None
    p90_s: float | None
    validity: Validity

    def to_dict(self) -> dict:
        """The record's ``timing`` block: plain lists and dicts, ready for JSON."""
        out = asdict(self)
        out["samples_s"] = list(self.samples_s)
        out["validity"] = {
            "valid": self.validity.valid,
            "reasons": list(self.validity.reasons),
            "warnings": list(self.validity.warnings),
        }
        out["statistic"] = "median; iqr = p75 - p25; linear interpolation"
        return out


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted, non-empty list (numpy's default)."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_s, *, min_iters: int = 1, min_time_s: float = 0.0) -> tuple[dict, Validity]:
    """Statistics and verdict for raw samples: ({median_s, iqr_s, p10_s, p90_s}, Validity).

    Used by `measure` and again by the results loader, which recomputes everything from the raw
    samples (a null sample, from a non-finite value sanitised on write, counts as non-finite).
    """
    samples = list(samples_s)
    reasons: list[str] = []
    warnings: list[str] = []
    stats = {"median_s": None, "iqr_s": None, "p10_s": None, "p90_s": None}
    if not samples:
        return stats, Validity(False, ("no_samples",), ())
    if any(s is None or not math.isfinite(s) for s in samples):
        reasons.append("non_finite_sample")
    elif any(s <= 0 for s in samples):
        reasons.append("non_positive_sample")
    if len(samples) < min_iters:
        reasons.append("min_iterations_not_met")
    if not reasons or reasons == ["min_iterations_not_met"]:
        if sum(samples) < min_time_s:
            reasons.append("min_duration_not_met")
        ordered = sorted(samples)
        stats["median_s"] = quantile(ordered, 0.5)
        if len(ordered) == 1:
            warnings.append("single_sample")
        else:
            stats["iqr_s"] = quantile(ordered, 0.75) - quantile(ordered, 0.25)
            stats["p10_s"] = quantile(ordered, 0.10)
            stats["p90_s"] = quantile(ordered, 0.90)
            ratio = stats["iqr_s"] / stats["median_s"] if stats["median_s"] > 0 else math.inf
            if ratio > VERY_NOISY_IQR_RATIO:
                warnings.append("very_noisy")
            elif ratio > NOISY_IQR_RATIO:
                warnings.append("noisy")
    return stats, Validity(not reasons, tuple(reasons), tuple(warnings))


def measure(
    fn: Callable[[], object],
    *,
    sync: Callable[[], object] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    warmup_iters: int = 3,
    warmup_s: float = 0.0,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    max_time_s: float = 30.0,
    max_iters: int = 10_000,
    on_start: Callable[[], object] | None = None,
    on_sample: Callable[[int, float], object] | None = None,
) -> Measurement:
    """Time ``fn()`` honestly (see the module docstring for the exact procedure).

    ``sync`` waits for the device (``torch.cuda.synchronize``; None on CPU). ``clock`` returns
    seconds (a fake one in tests). Limits: ``warmup_iters >= 0``, ``min_iters >= 1``,
    ``max_iters >= 1``, times >= 0 and ``max_time_s > 0``; a cap below a minimum is allowed and
    yields an invalid measurement, which is the point of the verdict.

    >>> m = measure(lambda: sum(range(1000)), min_iters=5, min_time_s=0.0)
    >>> m.n_samples >= 5 and m.validity.valid
    True
    """
    for name, value in (("warmup_iters", warmup_iters), ("min_iters", min_iters), ("max_iters", max_iters)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    require_positive("warmup_iters", warmup_iters, allow_zero=True)
    require_positive("min_iters", min_iters)
    require_positive("max_iters", max_iters)
    require_positive("warmup_s", warmup_s, allow_zero=True)
    require_positive("min_time_s", min_time_s, allow_zero=True)
    require_positive("max_time_s", max_time_s)
    sync = sync or (lambda: None)

    sync()
    start = clock()
    fn()
    sync()
    first_call_s = clock() - start

    warm_start = clock()
    warmed = 0
    while warmed < warmup_iters or clock() - warm_start < warmup_s:
        if clock() - warm_start >= max_time_s:
            break
        fn()
        sync()
        warmed += 1

    if on_start is not None:
        on_start()
    samples: list[float] = []
    window_start = clock()
    timed = 0.0
    while len(samples) < min_iters or timed < min_time_s:
        if len(samples) >= max_iters or clock() - window_start >= max_time_s:
            break
        t0 = clock()
        fn()
        sync()
        dt = clock() - t0
        samples.append(dt)
        timed += dt
        if on_sample is not None:
            on_sample(len(samples) - 1, dt)
    total_s = clock() - window_start

    stats, validity = summarize(samples, min_iters=min_iters, min_time_s=min_time_s)
    return Measurement(
        samples_s=tuple(samples),
        first_call_s=first_call_s,
        warmup_iters=warmed,
        n_samples=len(samples),
        total_s=total_s,
        validity=validity,
        **stats,
    )
