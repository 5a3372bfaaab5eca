"""One `measure()` function: how every number in a record is timed (docs/measuring.md §1-§4).

1. ``sync()``, then the **first (cold) call** is timed on its own and kept as ``first_call_s``; it is never
   a sample (it pays for compilation, autotuning, allocator growth).
2. **Warm-up** on the same callable, hence the same shapes: at least ``warmup_iters`` calls (the cold call
   does not count), stopping early at ``max_time_s``.
3. The **timed window**: each call is bracketed by the clock, with ``sync()`` after the call (the previous
   call ended with a sync, so the device is idle when the clock starts). Calls continue until BOTH
   ``min_iters`` samples and ``min_time_s`` of summed sample time are reached, or a cap hits first:
   ``max_iters`` samples or ``max_time_s`` of wall clock in the window.
4. **Statistics and verdict** on the raw samples: ``stats.summarize`` (median, IQR, p10, p90; an invalid
   measurement when a cap hit before a minimum).

Telemetry stays outside this module: a caller passes ``on_start`` (called after warm-up, right before the
timed window opens, device idle) and ``on_sample(index, seconds)`` (called after each timed call, outside the
timed region). Exceptions from ``fn`` (an OOM, say) propagate untouched: the caller turns them into a status.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from llmecon.records.schema import Knobs
from llmecon.stats import Validity, summarize

# The defaults, written once: per device kind. A CPU step of a small model takes a millisecond and the
# host is noisy, so a short window; a GPU step may take a second, so a longer one.
DEFAULT_KNOBS = {
    "cpu": Knobs(warmup_iters=2, min_iters=5, min_time_s=0.3, max_time_s=10.0),
    "cuda": Knobs(warmup_iters=3, min_iters=10, min_time_s=1.0, max_time_s=30.0),
}


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
        out["validity"] = self.validity.to_dict()
        out["statistic"] = "median; iqr = p75 - p25; linear interpolation"
        return out


def measure(fn: Callable[[], object], knobs: Knobs = DEFAULT_KNOBS["cuda"], *,
            sync: Callable[[], object] | None = None, clock: Callable[[], float] = time.perf_counter,
            on_start: Callable[[], object] | None = None,
            on_sample: Callable[[int, float], object] | None = None) -> Measurement:
    """Time ``fn()`` honestly (see the module docstring for the exact procedure).

    ``sync`` waits for the device (``torch.cuda.synchronize``; None on CPU). ``clock`` returns seconds (a
    fake one in tests). A cap below a minimum is allowed and yields an invalid measurement, which is the
    point of the verdict.

    >>> m = measure(lambda: sum(range(1000)), Knobs(warmup_iters=1, min_iters=5, min_time_s=0.0, max_time_s=1.0))
    >>> m.n_samples >= 5 and m.validity.valid
    True
    """
    sync = sync or (lambda: None)
    sync()
    start = clock()
    fn()
    sync()
    first_call_s = clock() - start

    warm_start = clock()
    warmed = 0
    while warmed < knobs.warmup_iters and clock() - warm_start < knobs.max_time_s:
        fn()
        sync()
        warmed += 1

    if on_start is not None:
        on_start()
    samples: list[float] = []
    window_start = clock()
    timed = 0.0
    while len(samples) < knobs.min_iters or timed < knobs.min_time_s:
        if len(samples) >= knobs.max_iters or clock() - window_start >= knobs.max_time_s:
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

    stats, validity = summarize(samples, min_iters=knobs.min_iters, min_time_s=knobs.min_time_s)
    return Measurement(samples_s=tuple(samples), first_call_s=first_call_s, warmup_iters=warmed,
                       n_samples=len(samples), total_s=total_s, validity=validity, **stats)
