"""The step-time model: t = F/(P·η_c) + B/(W·η_m) + t0, validated."""

from __future__ import annotations

import pytest

from llmecon.calibration.model import StepModel, regime_of
from llmecon.errors import UserError


def test_model_step_model_validates():
    with pytest.raises(UserError, match="compute or a memory term"):
        StepModel(None, None, 0.0, 1e12, None)
    with pytest.raises(UserError, match="t0_s"):
        StepModel(0.5, None, -1.0, 1e12, None)
    with pytest.raises(UserError, match="bytes_per_step is required"):
        StepModel(0.5, 0.5, 0.0, 1e12, 1e11).step_time_s(1e9, None)


def test_model_terms_sum_and_regime():
    m = StepModel(0.5, 0.25, 1e-3, 1e12, 1e11)
    terms = m.terms_s(1e9, 1e8)
    assert terms == pytest.approx({"compute": 2e-3, "memory": 4e-3, "overhead": 1e-3})
    assert m.step_time_s(1e9, 1e8) == (pytest.approx(7e-3), "memory-bound")
    assert regime_of({"compute": 1.0, "memory": 1.0, "overhead": 0.5}) == "compute-bound"   # ties go to compute


def test_model_boundaries():
    b = StepModel(0.5, 0.25, 1e-3, 1e12, 1e11).boundaries()
    assert b["ridge_flops_per_byte"] == pytest.approx(0.5e12 / 0.25e11)
    assert b["compute_equals_overhead_at_flops"] == pytest.approx(0.5e12 * 1e-3)


def test_model_per_layer_overhead_needs_the_depth():
    m = StepModel(0.5, 0.25, 1e-3, 1e12, 1e11, tau_s_per_layer=2e-4)
    assert m.terms_s(1e9, 1e8, layers=10)["overhead"] == pytest.approx(1e-3 + 10 * 2e-4)
    assert m.step_time_s(1e9, 1e8, 32) == (pytest.approx(2e-3 + 4e-3 + 1e-3 + 32 * 2e-4), "overhead-bound")
    with pytest.raises(UserError, match="per-layer overhead: the model's number of decoder layers is required"):
        m.step_time_s(1e9, 1e8)
    with pytest.raises(UserError, match="number of layers must be a whole number"):
        m.overhead_s(2.5)
    with pytest.raises(UserError, match="tau_s_per_layer must be a finite number >= 0"):
        StepModel(0.5, None, 0.0, 1e12, None, tau_s_per_layer=-1e-4)
    # the overhead boundaries exist at a given depth only
    assert m.boundaries()["compute_equals_overhead_at_flops"] is None
    assert m.boundaries(10)["compute_equals_overhead_at_flops"] == pytest.approx(0.5e12 * 3e-3)
    # no τ: the depth is not needed and changes nothing
    assert StepModel(0.5, None, 1e-3, 1e12, None).overhead_s(80) == 1e-3
