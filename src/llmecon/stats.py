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
from functools import lru_cache

NOISY_IQR_RATIO = 0.10
VERY_NOISY_IQR_RATIO = 0.25
# Between rounds: the spread is the rounds' half-range over their median (+-x %), so the same 10 % and 25 %
# of the median, as a range, are half these.
NOISY_SPREAD = 0.05
VERY_NOISY_SPREAD = 0.125
ROUND_STATISTIC = ("median over rounds of each round's mean step time; spread = (max - min) / 2 of the round means, "
                   "over that median")


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


def median_p90(samples) -> tuple[float | None, float | None]:
    """(median, 90th percentile) of raw samples pooled as given, each by `quantile`: linear interpolation between
    the two nearest order statistics, numpy's default method (``numpy.percentile(x, [50, 90])``). (None, None)
    when there is no sample or one is non-finite (None: sanitised when written)."""
    values = list(samples)
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None, None
    ordered = sorted(values)
    return quantile(ordered, 0.5), quantile(ordered, 0.9)


def summarize(samples_s, *, min_iters: int = 1, min_time_s: float = 0.0) -> tuple[dict, Validity]:
    """({mean_s, median_s, iqr_s, p10_s, p90_s}, Validity) of raw samples in seconds. A None sample (a
    non-finite value that was sanitised when written) counts as non-finite."""
    samples = list(samples_s)
    reasons: list[str] = []
    warnings: list[str] = []
    stats = {"mean_s": None, "median_s": None, "iqr_s": None, "p10_s": None, "p90_s": None}
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
        stats["mean_s"] = math.fsum(samples) / len(samples)
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


def summarize_rounds(rounds, *, min_iters: int = 1, min_time_s: float = 0.0) -> tuple[dict, Validity]:
    """({step_s, spread, round_means_s}, Validity) of a configuration measured in rounds (each a list of raw
    samples).

    Each round is summarised by its **mean** step time: a round's throughput is its work over its time, stalls
    included (a step preempted for 4 ms costs 4 ms; the median would not see one stall in six, which is what
    sharing a CPU with another process looks like). The estimate is the **median over rounds** of those means:
    a burst from a neighbour spoils one round of each configuration, which the median ignores. The spread
    between rounds is the noise: with two rounds or more it replaces the within-round IQR warnings (samples
    inside one round are correlated, so their IQR understates how much a second run can differ). Every round
    must be valid for the row to be."""
    reasons: list[str] = []
    warnings: list[str] = []
    means: list[float] = []
    if not rounds:
        return {"step_s": None, "spread": None, "round_means_s": []}, Validity(False, ("no_samples",), ())
    for samples in rounds:
        stats, verdict = summarize(samples, min_iters=min_iters, min_time_s=min_time_s)
        reasons += [r for r in verdict.reasons if r not in reasons]
        warnings += [w for w in verdict.warnings if w not in warnings]
        if stats["mean_s"] is not None:
            means.append(stats["mean_s"])
    out = {"step_s": quantile(sorted(means), 0.5) if means else None, "spread": None, "round_means_s": means}
    if len(rounds) >= 2 and len(means) >= 2 and out["step_s"] > 0:
        warnings = [w for w in warnings if w not in ("noisy", "very_noisy")]
        out["spread"] = (max(means) - min(means)) / 2 / out["step_s"]
        if out["spread"] > VERY_NOISY_SPREAD:
            warnings.append("very_noisy")
        elif out["spread"] > NOISY_SPREAD:
            warnings.append("noisy")
    return out, Validity(not reasons, tuple(reasons), tuple(warnings))


# ------------------------------------------------------------------ distribution-free confidence intervals
#
# Both intervals below assume nothing about the shape of the timing distribution (timings are skewed and
# heavy-tailed): they are read off order statistics, with exact coverage from the binomial and Mann-Whitney
# null distributions (docs/measuring.md §3-§4).

Z_TWO_SIDED = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}
_EXACT_BINOMIAL_MAX_N = 1000          # math.comb / 2**n stays a finite float up to here
_EXACT_MANN_WHITNEY_MAX_CELLS = 625  # m * n up to which U's null distribution is counted exactly (25 x 25)
_EPS = 1e-12  # an exact coverage equal to the target (3 + 3 values at 90 %) reaches it despite rounding


def _z(confidence: float) -> float:
    if confidence not in Z_TWO_SIDED:
        raise ValueError(f"confidence must be one of {sorted(Z_TWO_SIDED)}, got {confidence!r}")
    return Z_TWO_SIDED[confidence]


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (k, n + 1 - k) of the order statistics bounding the median with at least ``confidence``.

    The interval [x_(k), x_(n+1-k)] misses the median when at most k - 1 samples fall below it, or above it:
    coverage = 1 - 2 P(B <= k - 1), B ~ Binomial(n, 1/2), exactly (Conover, *Practical Nonparametric
    Statistics*, 3rd ed., 1999, §3.2; asv's ``quantile_ci`` uses the same construction). k is the largest
    rank that keeps the coverage; None when even [x_(1), x_(n)] falls short (n < 6 at 95 %).
    """
    alpha = 1.0 - confidence
    _z(confidence)
    if n < 1:
        return None
    if n > _EXACT_BINOMIAL_MAX_N:  # normal approximation of the binomial, as the references use for large n
        k = math.floor((n - _z(confidence) * math.sqrt(n)) / 2)
        return (k, n + 1 - k) if k >= 1 else None
    cdf, k = 0.0, 0
    while k < n:
        cdf += math.comb(n, k) / 2.0 ** n  # P(B <= k)
        if 2 * cdf > alpha + _EPS:
            break
        k += 1
    return (k, n + 1 - k) if k >= 1 else None


def median_ci(samples, confidence: float = 0.95) -> tuple[float, float] | None:
    """(low, high) confidence interval of the median of ``samples``; None when there are too few."""
    ordered = sorted(samples)
    ranks = median_ci_ranks(len(ordered), confidence)
    return None if ranks is None else (ordered[ranks[0] - 1], ordered[ranks[1] - 1])


def relative_ci_halfwidth(samples, confidence: float = 0.95) -> float | None:
    """Half the width of the median's confidence interval over the median: the precision a stopping rule aims
    at (``0.02`` means the median is known to about +-2 %). None when the interval cannot be formed."""
    ci = median_ci(samples, confidence)
    if ci is None:
        return None
    mid = quantile(sorted(samples), 0.5)
    return (ci[1] - ci[0]) / 2 / mid if mid > 0 else math.inf


def mann_whitney_cdf(m: int, n: int) -> list[float]:
    """P(U <= u) for u = 0 .. m*n under the null hypothesis, U the Mann-Whitney count of pairs (x_i < y_j).

    Counted exactly: the number of orderings with a given U obeys c(m, n, u) = c(m-1, n, u-n) + c(m, n-1, u)
    (Mann & Whitney 1947), computed row by row over m."""
    if m < 1 or n < 1:
        raise ValueError("both samples need at least one value")
    # counts[j][u]: orderings of (i x's, j y's) with U = u, for the current i
    counts = [[1] for _ in range(n + 1)]  # i = 0: U = 0 in one way
    for i in range(1, m + 1):
        new = [[1]]  # j = 0: U = 0
        for j in range(1, n + 1):
            size = i * j + 1
            row = [0] * size
            for u, c in enumerate(counts[j]):      # the last value is an x, above all j y's: U grows by j
                row[u + j] += c
            for u, c in enumerate(new[j - 1]):     # the last value is a y: U unchanged
                row[u] += c
            new.append(row)
        counts = new
    total = math.comb(m + n, m)
    out, running = [], 0
    for c in counts[n]:
        running += c
        out.append(running / total)
    return out


@lru_cache(maxsize=256)
def shift_ci_ranks(m: int, n: int, confidence: float = 0.95) -> tuple[int, int, float] | None:
    """1-based ranks (k, mn + 1 - k) among the m*n sorted pairwise differences bounding the shift, and the
    interval's exact coverage 1 - 2 P(U <= k - 1) (Hollander, Wolfe & Chicken, *Nonparametric Statistical
    Methods*, 3rd ed., 2014, §4.3; Bauer 1972). None when no interval reaches ``confidence``."""
    alpha = 1.0 - confidence
    _z(confidence)
    cells = m * n
    if cells > _EXACT_MANN_WHITNEY_MAX_CELLS:  # normal approximation of U (no ties: timings are continuous)
        k = math.floor(cells / 2 - _z(confidence) * math.sqrt(cells * (m + n + 1) / 12))
        return (k, cells + 1 - k, confidence) if k >= 1 else None
    cdf = mann_whitney_cdf(m, n)
    k = 0
    while k < cells and 2 * cdf[k] <= alpha + _EPS:  # cdf[k] = P(U <= k): rank k + 1 keeps the coverage
        k += 1
    return (k, cells + 1 - k, 1 - 2 * cdf[k - 1]) if k >= 1 else None


@dataclass(frozen=True)
class Shift:
    """The shift y - x between two samples: Hodges-Lehmann estimate and its Mann-Whitney interval."""

    estimate: float
    low: float | None       # None: too few values for an interval at this confidence
    high: float | None
    coverage: float | None  # the interval's exact coverage (>= the confidence asked for)
    m: int
    n: int


def hodges_lehmann_shift(x, y, confidence: float = 0.95) -> Shift:
    """Shift of ``y`` relative to ``x``: the median of all pairwise differences y_j - x_i (Hodges & Lehmann
    1963), with the distribution-free interval [d_(k), d_(mn+1-k)] of ``shift_ci_ranks``. Applied to log
    step times it is a log ratio: exp(estimate) estimates t_y / t_x."""
    xs, ys = list(x), list(y)
    if not xs or not ys:
        raise ValueError("both samples need at least one value")
    diffs = sorted(b - a for a in xs for b in ys)
    estimate = quantile(diffs, 0.5)
    ranks = shift_ci_ranks(len(xs), len(ys), confidence)
    if ranks is None:
        return Shift(estimate, None, None, None, len(xs), len(ys))
    return Shift(estimate, diffs[ranks[0] - 1], diffs[ranks[1] - 1], ranks[2], len(xs), len(ys))
