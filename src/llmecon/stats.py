"""Statistics of raw timing samples, and the verdict on them: used by bench when it measures and by the
records loader, which recomputes everything from the raw samples it stores.

Median and IQR (p75 - p25), p10 and p90; quantiles interpolate linearly (numpy's default). One sample has
no spread: IQR and percentiles are None, never 0. The verdict: ``valid`` is False with reasons
``min_iterations_not_met``, ``min_duration_not_met`` (a cap hit first), ``no_samples``,
``non_finite_sample`` or ``non_positive_sample``; warnings ``single_sample``, ``noisy`` (IQR/median over
10 %) or ``very_noisy`` (over 25 %), the thresholds of torch.utils.benchmark's ``Measurement`` (its
"significant environmental influence" warning), see docs/measuring.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NOISY_IQR_RATIO = 0.10
VERY_NOISY_IQR_RATIO = 0.25


@dataclass(frozen=True)
class Validity:
    """The verdict on one measurement: invalid rows carry reasons, valid ones may carry warnings."""

    valid: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"valid": self.valid, "reasons": list(self.reasons), "warnings": list(self.warnings)}


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted, non-empty list (numpy's default method)."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_s, *, min_iters: int = 1, min_time_s: float = 0.0) -> tuple[dict, Validity]:
    """({median_s, iqr_s, p10_s, p90_s}, Validity) of raw samples in seconds. A None sample (a non-finite
    value that was sanitised when written) counts as non-finite."""
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
