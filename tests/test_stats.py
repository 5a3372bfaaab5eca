"""Statistics of raw samples and their verdict (stats.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from llmecon.stats import (
    NOISY_IQR_RATIO,
    VERY_NOISY_IQR_RATIO,
    Validity,
    hodges_lehmann_shift,
    mann_whitney_cdf,
    median_ci,
    median_ci_ranks,
    median_p90,
    quantile,
    relative_ci_halfwidth,
    shift_ci_ranks,
    summarize,
)


@pytest.mark.parametrize("spread, warning", [(0.0, None), (0.15, "noisy"), (0.5, "very_noisy")])
def test_stats_noise_warnings(spread, warning):
    samples = [1.0 - spread / 2] * 5 + [1.0 + spread / 2] * 5  # median 1, IQR == spread
    stats, verdict = summarize(samples)
    assert stats["iqr_s"] == pytest.approx(spread)
    assert verdict.valid
    assert verdict.warnings == ((warning,) if warning else ())


@pytest.mark.parametrize("bad, reason", [(math.nan, "non_finite_sample"), (math.inf, "non_finite_sample"),
                                         (None, "non_finite_sample"), (0.0, "non_positive_sample"),
                                         (-1.0, "non_positive_sample")])
def test_stats_impossible_samples_are_invalid(bad, reason):
    stats, verdict = summarize([1.0, bad, 1.0])
    assert not verdict.valid and verdict.reasons == (reason,)
    assert stats["median_s"] is None


def test_stats_no_samples():
    stats, verdict = summarize([])
    assert verdict.reasons == ("no_samples",) and stats["median_s"] is None


def test_stats_minimums_make_it_invalid():
    _, verdict = summarize([0.1] * 3, min_iters=5, min_time_s=1.0)
    assert verdict.reasons == ("min_iterations_not_met", "min_duration_not_met")


def test_stats_quantile_matches_linear_interpolation():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.25) == 1.75
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([5.0], 0.9) == 5.0


def test_stats_percentiles_interpolate_linearly():
    stats, verdict = summarize([4.0, 1.0, 3.0, 2.0])        # unsorted input: summarize sorts
    assert stats == pytest.approx({"mean_s": 2.5, "median_s": 2.5, "iqr_s": 1.5, "p10_s": 1.3, "p90_s": 3.7})  # numpy
    assert verdict == Validity(True, (), ("very_noisy",))   # IQR/median = 60 %


def test_stats_noise_thresholds_are_torch_benchmarks():
    """torch.utils.benchmark's Measurement warns above IQR/median 10 % and 25 % (docs/measuring.md)."""
    assert (NOISY_IQR_RATIO, VERY_NOISY_IQR_RATIO) == (0.10, 0.25)


def test_stats_validity_to_dict_is_the_records_block():
    verdict = Validity(False, ("min_iterations_not_met",), ("noisy",))
    assert verdict.to_dict() == {"valid": False, "reasons": ["min_iterations_not_met"], "warnings": ["noisy"]}
    assert Validity(True).to_dict() == {"valid": True, "reasons": [], "warnings": []}


# ---- distribution-free intervals --------------------------------------------------------------------

def test_stats_median_ci_ranks_match_the_binomial_tables():
    """Conover (1999) table A3 / the usual sign-test table: n = 6 -> (1, 6), 10 -> (2, 9), 100 -> (40, 61)."""
    assert median_ci_ranks(5) is None                # even [min, max] covers only 93.75 %
    assert median_ci_ranks(6) == (1, 6)
    assert median_ci_ranks(10) == (2, 9)
    assert median_ci_ranks(100) == (40, 61)
    assert median_ci_ranks(10, 0.90) == (2, 9) and median_ci_ranks(10, 0.99) == (1, 10)
    lo, hi = median_ci_ranks(5000)                    # the normal approximation beyond the exact range
    assert abs(lo - (5000 / 2 - 1.96 * 5000 ** 0.5 / 2)) <= 1 and lo + hi == 5001
    with pytest.raises(ValueError, match="confidence"):
        median_ci_ranks(10, 0.8)


def test_stats_median_ci_covers_the_true_median_at_its_rate():
    rng = np.random.default_rng(1)
    n, trials = 25, 4000
    true_median = np.log(2)  # exponential(1)
    hits = 0
    for _ in range(trials):
        lo, hi = median_ci(rng.exponential(size=n))
        hits += lo <= true_median <= hi
    exact = 1 - 2 * sum(math.comb(n, k) for k in range(median_ci_ranks(n)[0])) / 2 ** n
    assert exact >= 0.95 and abs(hits / trials - exact) < 0.015


def test_stats_relative_ci_halfwidth():
    assert relative_ci_halfwidth([1.0] * 3) is None
    assert relative_ci_halfwidth([0.9, 0.95, 1.0, 1.0, 1.05, 1.1]) == pytest.approx(0.1)
    assert relative_ci_halfwidth([1.0] * 10) == 0.0


def test_stats_mann_whitney_cdf_matches_enumeration():
    for m, n in ((1, 1), (2, 3), (4, 4), (3, 6)):
        counts = [0] * (m * n + 1)
        for xs in itertools.combinations(range(m + n), m):  # positions of the x's in the pooled order
            counts[sum(1 for i in xs for j in set(range(m + n)) - set(xs) if i < j)] += 1
        total = math.comb(m + n, m)
        expected = list(itertools.accumulate(c / total for c in counts))
        assert mann_whitney_cdf(m, n) == pytest.approx(expected)


def test_stats_shift_ci_ranks_match_the_tables():
    """Hollander, Wolfe & Chicken (2014), table A.6: m = n = 5 -> C = 3 (96.8 %); m = n = 10 -> C = 24."""
    assert shift_ci_ranks(5, 5) == (3, 23, pytest.approx(1 - 2 * 4 / 252))
    assert shift_ci_ranks(10, 10)[:2] == (24, 77)
    assert shift_ci_ranks(3, 3) is None and shift_ci_ranks(3, 3, 0.90) == (1, 9, pytest.approx(0.9))
    k, k2, cover = shift_ci_ranks(40, 40)  # normal approximation
    assert k2 == 40 * 40 + 1 - k and cover == 0.95 and abs(k - shift_ci_ranks(25, 25)[0] * 1600 / 625) < 60


def test_stats_hodges_lehmann_finds_a_planted_shift():
    rng = np.random.default_rng(2)
    base = np.log(1e-3 * rng.lognormal(0, 0.03, size=7))
    slower = np.log(1.2e-3 * rng.lognormal(0, 0.03, size=7))
    s = hodges_lehmann_shift(base, slower)
    assert s.low < math.log(1.2) < s.high and s.low > 0 and s.coverage >= 0.95
    assert math.exp(s.estimate) == pytest.approx(1.2, rel=0.03)
    few = hodges_lehmann_shift([0.0, 0.1], [0.2])
    assert few.low is None and few.high is None and few.estimate == pytest.approx(0.15)


def test_stats_hodges_lehmann_without_a_shift_errs_at_its_stated_rate():
    """Identical distributions: the interval excludes 0 no more often than 1 - its exact coverage."""
    rng = np.random.default_rng(3)
    trials, misses = 3000, 0
    for _ in range(trials):
        s = hodges_lehmann_shift(rng.standard_t(3, size=5), rng.standard_t(3, size=5))
        misses += not (s.low <= 0 <= s.high)
    assert misses / trials < (1 - s.coverage) + 0.012


def test_stats_median_p90_is_numpys_default_percentile():
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 12, 37):
        x = rng.lognormal(-6.0, 0.3, n).tolist()
        assert median_p90(x) == pytest.approx(tuple(np.percentile(x, [50, 90])), rel=1e-12)
    assert median_p90([]) == (None, None) and median_p90([0.1, None]) == (None, None)
    assert median_p90([0.1, math.inf]) == (None, None)
