"""Calibration: planted efficiencies and overhead are recovered, held-out error is honest, bad data is
refused, and each measured row can be set against its prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmecon.calibration.apply import predict
from llmecon.calibration.fit import fit_calibration, nnls_relative, predicted_points
from llmecon.errors import UserError
from llmecon.records.schema import SCHEMA_VERSION, Run

PLANT = {"eta_c": 0.4, "eta_m": 0.7, "t0": 2e-3}


def _fit(calib, phase):
    return next(f for f in calib.fits if f.phase == phase)


@pytest.fixture(scope="module")
def all_phases(plant):
    """Decode at the default shapes; prefill and train at small shapes too, so t0 is a visible share of some steps."""
    def make(noise=0.01, seed=0, **kw):
        decode = plant.frame(phases=("decode",), noise=noise, seed=seed, **kw)
        dense = plant.frame(phases=("prefill", "train"), seqs=(8, 32, 128), batches=(1, 2, 4, 8), noise=noise,
                            seed=seed + 1, **kw)
        return pd.concat([decode, dense], ignore_index=True)
    return make


def test_fit_nnls_relative_is_exact_on_exact_data_and_respects_signs():
    X = np.column_stack([np.arange(1.0, 6.0), np.ones(5)])
    assert np.allclose(nnls_relative(X, X @ np.array([2.0, 3.0])), [2.0, 3.0])
    # data that wants a negative intercept: it is clamped at zero, the slope refits
    theta = nnls_relative(X, X @ np.array([2.0, 0.0]) - 0.5)
    assert theta[1] == 0 and theta[0] > 0


def test_fit_recovers_planted_efficiencies_and_overhead(all_phases):
    calib = fit_calibration(all_phases())
    assert {f.phase for f in calib.fits} == {"prefill", "decode", "train"} and not calib.refused
    for phase in ("prefill", "decode", "train"):
        f = _fit(calib, phase)
        assert f.eta_compute == pytest.approx(PLANT["eta_c"], rel=0.03), phase
        assert f.t0_s == pytest.approx(PLANT["t0"], rel=0.1), phase   # t0 is a small share of most steps
        assert f.peak_flops_source == "measured_ceiling"             # the synthetic device has no datasheet
        assert f.heldout.method == "leave-one-shape-out"
        assert f.heldout.median_rel_error < 0.02 and f.heldout.max_rel_error < 0.06
    decode = _fit(calib, "decode")
    assert decode.terms == ["compute", "memory", "overhead"]
    assert decode.eta_memory == pytest.approx(PLANT["eta_m"], rel=0.03)
    # prefill/train have no byte count in the records: fitted compute + overhead, stated in terms
    assert _fit(calib, "train").terms == ["compute", "overhead"] and _fit(calib, "train").eta_memory is None
    ridge = decode.regime_boundaries["ridge_flops_per_byte"]
    assert ridge == pytest.approx(1e12 * 0.4 / (1e11 * 0.7), rel=0.05)


def test_fit_prefers_datasheet_peaks_and_records_them(plant):
    calib = fit_calibration(plant.frame(phases=("decode",), datasheet=True, hardware_id="h100-sxm",
                                        device_name="NVIDIA H100 80GB HBM3"))
    f = _fit(calib, "decode")
    assert f.hardware == "h100-sxm" and f.hardware_id == "h100-sxm"
    assert f.peak_flops_source == "datasheet" and f.peak_bytes_source == "datasheet"
    assert f.eta_compute == pytest.approx(0.4, rel=0.03)


def test_fit_refuses_too_few_shapes_clearly(plant):
    frame = plant.frame(phases=("decode",), batches=(1, 2), seqs=(128,))
    with pytest.raises(UserError, match=r"too few rows: 2 distinct shape\(s\), need at least 3"):
        fit_calibration(frame)
    # one phase too thin, another fine: the thin one is listed as refused, the rest fitted
    ok = plant.frame(phases=("prefill",), seqs=(8, 32, 128), batches=(1, 2))
    calib = fit_calibration(pd.concat([frame, ok], ignore_index=True))
    assert [f.phase for f in calib.fits] == ["prefill"]
    assert calib.refused[0].phase == "decode" and "too few rows" in calib.refused[0].refused


def test_fit_skips_invalid_rows(plant):
    frame = plant.frame(phases=("decode",), batches=(1, 2, 4), seqs=(128,))
    frame.loc[frame.batch_size == 4, "valid"] = False
    with pytest.raises(UserError, match="too few rows"):
        fit_calibration(frame)


def test_fit_refuses_noisy_rows_unless_forced(plant):
    frame = plant.frame(phases=("decode",), noise=1.5, seed=3)
    with pytest.raises(UserError, match=r"too noisy: median held-out error .* > 50%"):
        fit_calibration(frame)
    f = _fit(fit_calibration(frame, force=True), "decode")
    assert f.forced and any("too noisy" in w for w in f.warnings)


def test_fit_refuses_an_unknown_convention_and_missing_columns(plant):
    with pytest.raises(UserError, match="unknown FLOP convention"):
        fit_calibration(plant.frame(), convention="2N")
    with pytest.raises(UserError, match="lack column"):
        fit_calibration(plant.frame().drop(columns=["flops_per_step_executed"]))


def test_fit_provenance_names_runs_and_versions(all_phases, plant):
    run = Run.model_validate({"schema_version": SCHEMA_VERSION, "run_id": "run-a", "created_utc": "2026-12-01T00:00:00Z",
                              "tool_version": "0.1.0", **{k: v for k, v in plant.meta(dtype="fp16").items()},
                              "environment": {"python": "3.11", "tool_version": "0.1.0", "torch": "2.13"}})
    calib = fit_calibration(all_phases(), runs={"run-a": run}, problems=["x.json: unreadable"])
    assert calib.provenance.environments["run-a"]["torch"] == "2.13"
    assert calib.flop_convention == "executed" and calib.provenance.run_ids == ["run-a"]
    assert calib.provenance.problems == ["x.json: unreadable"]


def test_fit_unresolved_terms_sit_at_their_bound_with_a_warning(plant):
    # all overhead: 5 ms whatever the work (a tiny model on a CPU); F/P is at most 0.05 ms here
    frame = plant.frame(phases=("prefill",), batches=(1, 2, 4), seqs=(8, 16), noise=0.0, peak=1e15)
    frame["step_time_s"] = 5e-3
    calib = fit_calibration(frame)
    f = _fit(calib, "prefill")
    assert f.eta_compute == 1.0 and f.t0_s == pytest.approx(5e-3, rel=0.02)
    assert any("eta_compute is at its bound" in w for w in f.warnings)
    assert predict(calib, "Synthetic CPU", "fp16", "prefill", 1e6)[1] == "overhead-bound"


def test_fit_one_fit_per_hardware(plant):
    a = plant.frame(phases=("decode",), device_name="CPU A", run_id="run-a")
    b = plant.frame(phases=("decode",), device_name="CPU B", run_id="run-b", eta_c=0.2)
    calib = fit_calibration(pd.concat([a, b], ignore_index=True))
    assert [(f.hardware, f.run_ids) for f in calib.fits] == [("CPU A", ["run-a"]), ("CPU B", ["run-b"])]
    assert calib.fits[1].eta_compute == pytest.approx(0.2, rel=0.03)


def test_fit_predicted_points_set_each_row_against_its_prediction(all_phases, plant):
    frame = all_phases(noise=0.0)
    calib = fit_calibration(frame)
    points, missing = predicted_points(frame, calib)
    assert missing == 0 and len(points) == len(frame)
    assert np.allclose(points["predicted_step_time_s"], points["step_time_s"], rtol=1e-3)
    assert not points["held_out"].any()                   # every row came from the fitted run
    other = plant.frame(phases=("decode",), run_id="run-z", device_name="Other CPU")
    points, missing = predicted_points(pd.concat([frame, other], ignore_index=True), calib)
    assert missing == len(other)                            # no fit for that device: counted, not guessed


@pytest.fixture(scope="module")
def depths(plant):
    """Decode of three models of 4, 12 and 32 layers whose work grows with depth, with a planted per-layer
    overhead: t = F/(P·η_c) + B/(W·η_m) + t0 + L·τ (t0 1 ms, τ 0.3 ms per layer: a launch-bound eager decode)."""
    def make(noise=0.01, tau=3e-4, layers=(4, 12, 32), **kw):
        return pd.concat([plant.frame(phases=("decode",), model=f"synthetic-{L}l", layers=L, work_scale=L / 12,
                                      tau=tau, t0=1e-3, noise=noise, seed=L, batches=(1, 4, 16),
                                      seqs=(128, 512, 2048), **kw) for L in layers], ignore_index=True)
    return make


def test_fit_recovers_a_planted_per_layer_overhead(depths):
    f = _fit(fit_calibration(depths()), "decode")
    assert f.terms == ["compute", "memory", "overhead", "overhead_per_layer"]
    assert f.tau_s_per_layer == pytest.approx(3e-4, rel=0.05)
    assert f.t0_s == pytest.approx(1e-3, rel=0.3)           # a small share of every step
    assert f.eta_compute == pytest.approx(0.4, rel=0.05) and f.eta_memory == pytest.approx(0.7, rel=0.05)
    assert f.range.layers == [4, 32] and f.models == ["synthetic-12l", "synthetic-32l", "synthetic-4l"]
    assert f.heldout.method == "leave-one-shape-out" and f.heldout.median_rel_error < 0.03
    m = f.heldout_by_model
    assert m.method == "leave-one-model-out" and m.n_folds == 3 and set(m.by_fold) == set(f.models)
    # each fold has two depths, so τ is fitted in every fold and carries to the held-out depth
    assert m.median_rel_error < 0.05 and m.max_rel_error < 0.15
    # the overhead boundaries depend on the depth: not stored for a fit over several depths
    assert f.regime_boundaries["compute_equals_overhead_at_flops"] is None
    assert f.regime_boundaries["ridge_flops_per_byte"] > 0


def test_fit_without_tau_a_constant_overhead_does_not_transfer(depths):
    """The issue this term fixes: one t0 for every depth turns launch overhead into a false η and misses
    every model it did not see."""
    with_tau = _fit(fit_calibration(depths()), "decode")
    without = _fit(fit_calibration(depths(), per_layer=False, force=True), "decode")
    assert without.tau_s_per_layer is None and "overhead_per_layer" not in without.terms
    assert without.eta_memory < 0.7 * with_tau.eta_memory        # the false η: overhead passed off as memory time
    assert without.heldout_by_model.median_rel_error > 5 * with_tau.heldout_by_model.median_rel_error
    assert without.heldout.median_rel_error > with_tau.heldout.median_rel_error


def test_fit_tau_needs_two_depths(depths, plant):
    # one depth: τ absent (t0 and L·τ are one number), the overhead t0 is that depth's whole overhead
    one = _fit(fit_calibration(depths(layers=(12,))), "decode")
    assert one.tau_s_per_layer is None and one.heldout_by_model is None
    assert one.t0_s == pytest.approx(1e-3 + 12 * 3e-4, rel=0.1)
    assert one.regime_boundaries["compute_equals_overhead_at_flops"] > 0     # known at that one depth
    # two models of one depth: a leave-one-model-out error, and a warning that t0 holds for that depth only
    same = plant.frame(phases=("decode",), model="other-12l", layers=12, work_scale=2.0, tau=3e-4, t0=1e-3,
                       batches=(1, 4, 16), seqs=(128, 512, 2048))
    f = _fit(fit_calibration(pd.concat([depths(layers=(12,)), same], ignore_index=True)), "decode")
    assert f.tau_s_per_layer is None and f.heldout_by_model.n_folds == 2
    assert any("every model has 12 layers" in w for w in f.warnings)
    # unknown depths (a frame without the column): no τ, as before
    assert _fit(fit_calibration(depths().drop(columns=["num_hidden_layers"])), "decode").tau_s_per_layer is None


def test_fit_two_depths_fit_tau_but_their_folds_cannot(depths):
    f = _fit(fit_calibration(depths(layers=(4, 32))), "decode")
    assert f.tau_s_per_layer == pytest.approx(3e-4, rel=0.05)
    assert any("each fold has one depth" in w for w in f.warnings)
    # the folds carry a constant overhead across a depth ratio of 8: far off, and said so
    assert f.heldout_by_model.median_rel_error > 0.3


def test_fit_refusal_follows_the_shape_error_and_warns_on_the_model_error(depths):
    """The threshold refuses on leave-one-shape-out only; leave-one-model-out above it is a warning."""
    calib = fit_calibration(depths(layers=(4, 32)), max_heldout_error=0.1)
    f = _fit(calib, "decode")
    assert not f.forced and f.heldout.median_rel_error < 0.1 < f.heldout_by_model.median_rel_error
    assert any(w.startswith("does not transfer between models: median leave-one-model-out error") for w in f.warnings)


def test_fit_predicted_points_use_each_rows_depth(depths):
    frame = depths(noise=0.0)
    points, missing = predicted_points(frame, fit_calibration(frame))
    assert missing == 0 and np.allclose(points["predicted_step_time_s"], points["step_time_s"], rtol=1e-3)


def test_fit_ignores_generate_rows(plant):
    """generate (bench-only) is predicted from the prefill and decode fits, never fitted: its rows, however many,
    leave the fits as they are and add no (hardware, dtype, generate) fit or refusal."""
    frame = plant.frame(phases=("decode",))
    generate = plant.frame(phases=("decode",), eta_c=0.05, eta_m=0.05, seed=7).assign(phase="generate")
    with_generate = fit_calibration(pd.concat([frame, generate], ignore_index=True))
    alone = fit_calibration(frame)
    assert [f.phase for f in with_generate.fits] == ["decode"] and not with_generate.refused
    assert _fit(with_generate, "decode").eta_memory == _fit(alone, "decode").eta_memory
    with pytest.raises(UserError, match="no valid rows"):
        fit_calibration(generate)
