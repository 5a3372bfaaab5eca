"""Calibration: planted parameters are recovered, regimes are right, bad data is refused, the file
validates, and predictions apply only where they were measured unless transferred."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from calib_synthetic import planted_frame, work
from llmecon.calibrate import (
    StepModel,
    fit_calibration,
    load_calibration,
    predict,
    predict_detail,
    save_calibration,
)
from llmecon.calibrate.fit import nnls_relative
from llmecon.errors import UserError

PLANT = {"eta_c": 0.4, "eta_m": 0.7, "t0": 2e-3}


def _fit(calib, phase):
    return next(f for f in calib["fits"] if f["phase"] == phase)


def planted_all_phases(noise=0.01, seed=0, **kw):
    # prefill/train at small shapes too, so that t0 is a visible share of some steps
    decode = planted_frame(phases=("decode",), noise=noise, seed=seed, **kw)
    dense = planted_frame(phases=("prefill", "train"), seqs=(8, 32, 128), batches=(1, 2, 4, 8), noise=noise,
                          seed=seed + 1, **kw)
    return pd.concat([decode, dense], ignore_index=True)


def test_nnls_relative_is_exact_on_exact_data_and_respects_signs():
    X = np.column_stack([np.arange(1.0, 6.0), np.ones(5)])
    assert np.allclose(nnls_relative(X, X @ np.array([2.0, 3.0])), [2.0, 3.0])
    # data that wants a negative intercept: it is clamped at zero, the slope refits
    theta = nnls_relative(X, X @ np.array([2.0, 0.0]) - 0.5)
    assert theta[1] == 0 and theta[0] > 0


def test_planted_efficiencies_and_overhead_are_recovered():
    calib = fit_calibration(planted_all_phases())
    assert {f["phase"] for f in calib["fits"]} == {"prefill", "decode", "train"} and not calib["refused"]
    for phase in ("prefill", "decode", "train"):
        f = _fit(calib, phase)
        assert f["eta_compute"] == pytest.approx(PLANT["eta_c"], rel=0.03), phase
        assert f["t0_s"] == pytest.approx(PLANT["t0"], rel=0.1), phase   # t0 is a small share of most steps
        assert f["peak_flops_source"] == "measured_ceiling"      # the synthetic device has no datasheet
        assert f["heldout"]["method"] == "leave-one-shape-out"
        assert f["heldout"]["median_rel_error"] < 0.02 and f["heldout"]["max_rel_error"] < 0.06
    decode = _fit(calib, "decode")
    assert decode["terms"] == ["compute", "memory", "overhead"]
    assert decode["eta_memory"] == pytest.approx(PLANT["eta_m"], rel=0.03)
    # prefill/train have no byte count in the records: fitted compute + overhead, stated in terms
    assert _fit(calib, "train")["terms"] == ["compute", "overhead"] and _fit(calib, "train")["eta_memory"] is None
    ridge = decode["regime_boundaries"]["ridge_flops_per_byte"]
    assert ridge == pytest.approx(1e12 * 0.4 / (1e11 * 0.7), rel=0.05)


def test_datasheet_peaks_are_preferred_and_recorded():
    calib = fit_calibration(planted_frame(phases=("decode",), datasheet=True, hardware_id="h100-sxm",
                                          device_name="NVIDIA H100 80GB HBM3"))
    f = _fit(calib, "decode")
    assert f["hardware"] == "h100-sxm"
    assert f["peak_flops_source"] == "datasheet" and f["peak_bytes_source"] == "datasheet"
    assert f["eta_compute"] == pytest.approx(0.4, rel=0.03)


def test_regimes_follow_the_dominant_term():
    calib = fit_calibration(planted_all_phases(noise=0.0))
    hw = "Synthetic CPU"
    big_decode = work("decode", 1, 512)              # weights stream dominates at batch 1
    assert predict(calib, hw, "fp16", "decode", big_decode[0], big_decode[1])[1] == "memory-bound"
    busy = work("decode", 256, 128)                  # 256 sequences: FLOPs dominate
    assert predict(calib, hw, "fp16", "decode", busy[0], busy[1])[1] == "compute-bound"
    assert predict(calib, hw, "fp16", "prefill", 1e6)[1] == "overhead-bound"   # a few kFLOP-sized step
    assert predict(calib, hw, "fp16", "prefill", work("prefill", 8, 2048)[0])[1] == "compute-bound"
    # the planted times are predicted
    F, B, _ = work("decode", 4, 512)
    t, _ = predict(calib, hw, "fp16", "decode", F, B)
    assert t == pytest.approx(F / 0.4e12 + B / 0.7e11 + 2e-3, rel=1e-6)
    d = predict_detail(calib, hw, "fp16", "decode", F, B)
    assert d["effective_mfu"] == pytest.approx(F / (t * 1e12)) and 0 < d["effective_mfu"] < 0.4
    assert d["extrapolated"] is False and predict_detail(calib, hw, "fp16", "decode", 1e15, 1e9)["extrapolated"]


def test_too_few_shapes_is_refused_clearly():
    frame = planted_frame(phases=("decode",), batches=(1, 2), seqs=(128,))
    with pytest.raises(UserError, match=r"too few rows: 2 distinct shape\(s\), need at least 3"):
        fit_calibration(frame)
    # one phase too thin, another fine: the thin one is listed as refused, the rest fitted
    ok = planted_frame(phases=("prefill",), seqs=(8, 32, 128), batches=(1, 2))
    calib = fit_calibration(pd.concat([frame, ok], ignore_index=True))
    assert [f["phase"] for f in calib["fits"]] == ["prefill"]
    assert calib["refused"][0]["phase"] == "decode" and "too few rows" in calib["refused"][0]["refused"]


def test_invalid_rows_are_not_fitted():
    frame = planted_frame(phases=("decode",), batches=(1, 2, 4), seqs=(128,))
    frame.loc[frame.batch_size == 4, "valid"] = False
    with pytest.raises(UserError, match="too few rows"):
        fit_calibration(frame)


def test_noisy_rows_are_refused_unless_forced():
    frame = planted_frame(phases=("decode",), noise=1.5, seed=3)
    with pytest.raises(UserError, match=r"too noisy: median held-out error .* > 50%"):
        fit_calibration(frame)
    calib = fit_calibration(frame, force=True)
    f = _fit(calib, "decode")
    assert f["forced"] and any("too noisy" in w for w in f["warnings"])


def test_unknown_convention_and_missing_columns():
    with pytest.raises(UserError, match="unknown FLOP convention"):
        fit_calibration(planted_frame(), convention="2N")
    with pytest.raises(UserError, match="lack column"):
        fit_calibration(planted_frame().drop(columns=["flops_per_step_executed"]))


def test_file_round_trip_and_validation(tmp_path):
    meta = {"run-a": {"environment": {"torch": "2.13"}, "tool_version": "0.1.0"}}
    calib = fit_calibration(planted_all_phases(), run_meta=meta)
    assert calib["provenance"]["environments"]["run-a"]["torch"] == "2.13"
    assert calib["flop_convention"] == "executed" and calib["provenance"]["run_ids"] == ["run-a"]
    path = save_calibration(calib, tmp_path / "calibration.json")
    assert load_calibration(path) == json.loads(path.read_text())
    bad = json.loads(path.read_text())
    bad["fits"][1]["eta_compute"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(UserError, match=r"bad.json: fits\[1\].eta_compute: must be a finite number > 0"):
        load_calibration(tmp_path / "bad.json")
    bad = json.loads(path.read_text()) | {"schema_version": 9}
    (tmp_path / "new.json").write_text(json.dumps(bad))
    with pytest.raises(UserError, match=r"new.json: schema_version: expected 1, got 9 \(written by a newer llmecon\)"):
        load_calibration(tmp_path / "new.json")
    (tmp_path / "nan.json").write_text(path.read_text().replace('"t0_s": ', '"t0_s": NaN, "x": ', 1))
    with pytest.raises(UserError, match="nan.json: not valid JSON"):
        load_calibration(tmp_path / "nan.json")
    with pytest.raises(UserError, match="cannot read calibration"):
        load_calibration(tmp_path / "missing.json")


def test_save_errors_are_user_errors_and_the_file_is_shareable(tmp_path):
    import os
    import stat

    calib = fit_calibration(planted_all_phases())
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot write calibration"):
        save_calibration(calib, tmp_path / "a-file" / "calibration.json")
    old = os.umask(0o022)
    try:
        path = save_calibration(calib, tmp_path / "calibration.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644       # not mkstemp's 0600: a calibration is shared
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_other_hardware_needs_transfer():
    calib = fit_calibration(planted_all_phases())
    with pytest.raises(UserError, match="needs --transfer"):
        predict(calib, "a100-sxm4-40gb", "bf16", "decode", 1e12, 1e9)
    with pytest.raises(UserError, match="no bf16 decode fit for Synthetic CPU"):
        predict(calib, "Synthetic CPU", "bf16", "decode", 1e12, 1e9)
    # the dtype left to the calibration: still the --transfer message, not "0 dtypes"
    from llmecon.calibrate.apply import calibrated_dtype

    with pytest.raises(UserError, match="not on a100-sxm4-40gb; applying it to another accelerator needs --transfer"):
        calibrated_dtype(calib, "a100-sxm4-40gb", "decode")
    assert calibrated_dtype(calib, "a100-sxm4-40gb", "decode", transfer=True) == "fp16"


def test_step_model_validates():
    with pytest.raises(UserError, match="compute or a memory term"):
        StepModel(None, None, 0.0, 1e12, None)
    with pytest.raises(UserError, match="t0_s"):
        StepModel(0.5, None, -1.0, 1e12, None)
    with pytest.raises(UserError, match="bytes_per_step is required"):
        StepModel(0.5, 0.5, 0.0, 1e12, 1e11).step_time_s(1e9, None)


def test_unresolved_terms_sit_at_their_bound_with_a_warning():
    # all overhead: 5 ms whatever the work (a tiny model on a CPU); F/P is at most 0.05 ms here
    frame = planted_frame(phases=("prefill",), batches=(1, 2, 4), seqs=(8, 16), noise=0.0, peak=1e15)
    frame["step_time_s"] = 5e-3
    f = _fit(fit_calibration(frame), "prefill")
    assert f["eta_compute"] == 1.0 and f["t0_s"] == pytest.approx(5e-3, rel=0.02)
    assert any("eta_compute is at its bound" in w for w in f["warnings"])
    calib = fit_calibration(frame)
    assert predict(calib, "Synthetic CPU", "fp16", "prefill", 1e6)[1] == "overhead-bound"


def test_estimates_need_a_fit_for_their_phase():
    from llmecon.calibrate import estimate_inference

    calib = fit_calibration(planted_frame(phases=("prefill",), seqs=(8, 32, 128), batches=(1, 2)))
    with pytest.raises(UserError, match="the calibration has no decode fit; it has: Synthetic CPU fp16 prefill"):
        estimate_inference(calib, "tiny", phase="decode")
    est = estimate_inference(calib, "tiny", phase="prefill", batch_size=2, context_len=64, usd_per_accelerator_hour=1.0)
    assert est["tokens_per_step"] == 128 and est["bytes_per_step"] is None and est["cost"]["usd_per_1k_tokens"] > 0
    assert est["cost"]["seconds_per_1k_tokens"] == pytest.approx(est["step_time_s"] / 128 * 1e3)


def test_one_fit_per_hardware_and_the_default_hardware_must_be_unambiguous():
    from llmecon.calibrate import calibrated_hardware

    a = planted_frame(phases=("decode",), device_name="CPU A", run_id="run-a")
    b = planted_frame(phases=("decode",), device_name="CPU B", run_id="run-b", eta_c=0.2)
    calib = fit_calibration(pd.concat([a, b], ignore_index=True))
    assert [(f["hardware"], f["run_ids"]) for f in calib["fits"]] == [("CPU A", ["run-a"]), ("CPU B", ["run-b"])]
    assert _fit({"fits": calib["fits"][1:]}, "decode")["eta_compute"] == pytest.approx(0.2, rel=0.03)
    with pytest.raises(UserError, match="covers 2 accelerators for phase decode .*choose one with --hardware"):
        calibrated_hardware(calib, "decode")
    assert calibrated_hardware({"fits": calib["fits"][:1]}, "decode") == "CPU A"
