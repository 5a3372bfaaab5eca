"""Statistics of raw samples and their verdict (stats.py)."""

from __future__ import annotations

import math

import pytest

from llmecon.stats import (
    NOISY_IQR_RATIO,
    VERY_NOISY_IQR_RATIO,
    Validity,
    quantile,
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
    assert stats == pytest.approx({"median_s": 2.5, "iqr_s": 1.5, "p10_s": 1.3, "p90_s": 3.7})  # numpy.percentile
    assert verdict == Validity(True, (), ("very_noisy",))   # IQR/median = 60 %


def test_stats_noise_thresholds_are_torch_benchmarks():
    """torch.utils.benchmark's Measurement warns above IQR/median 10 % and 25 % (docs/measuring.md)."""
    assert (NOISY_IQR_RATIO, VERY_NOISY_IQR_RATIO) == (0.10, 0.25)


def test_stats_validity_to_dict_is_the_records_block():
    verdict = Validity(False, ("min_iterations_not_met",), ("noisy",))
    assert verdict.to_dict() == {"valid": False, "reasons": ["min_iterations_not_met"], "warnings": ["noisy"]}
    assert Validity(True).to_dict() == {"valid": True, "reasons": [], "warnings": []}
