"""Applying a calibration: regimes follow the dominant term, other hardware needs --transfer, workloads are
counted with the cost model's own formulas."""

from __future__ import annotations

import pandas as pd
import pytest

from llmecon.calibration.apply import find_fit, predict, predict_detail, predict_workload, priceable_mfu
from llmecon.calibration.fit import fit_calibration
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError

HW = "Synthetic CPU"


@pytest.fixture(scope="module")
def calib(plant):
    decode = plant.frame(phases=("decode",), noise=0.0)
    dense = plant.frame(phases=("prefill", "train"), seqs=(8, 32, 128), batches=(1, 2, 4, 8), noise=0.0, seed=1)
    return fit_calibration(pd.concat([decode, dense], ignore_index=True))


def test_apply_regimes_follow_the_dominant_term(calib, plant):
    big_decode = plant.work("decode", 1, 512)          # weights stream dominates at batch 1
    assert predict(calib, HW, "fp16", "decode", big_decode[0], big_decode[1])[1] == "memory-bound"
    busy = plant.work("decode", 256, 128)              # 256 sequences: FLOPs dominate
    assert predict(calib, HW, "fp16", "decode", busy[0], busy[1])[1] == "compute-bound"
    assert predict(calib, HW, "fp16", "prefill", 1e6)[1] == "overhead-bound"   # a few kFLOP-sized step
    assert predict(calib, HW, "fp16", "prefill", plant.work("prefill", 8, 2048)[0])[1] == "compute-bound"


def test_apply_predicts_the_planted_times(calib, plant):
    F, B, _ = plant.work("decode", 4, 512)
    t, _ = predict(calib, HW, "fp16", "decode", F, B)
    assert t == pytest.approx(F / 0.4e12 + B / 0.7e11 + 2e-3, rel=1e-6)
    d = predict_detail(calib, HW, "fp16", "decode", F, B)
    assert d["effective_mfu"] == pytest.approx(F / (t * 1e12)) and 0 < d["effective_mfu"] < 0.4
    assert d["extrapolated"] is False and predict_detail(calib, HW, "fp16", "decode", 1e15, 1e9)["extrapolated"]


def test_apply_other_hardware_needs_transfer(calib):
    with pytest.raises(UserError, match="needs --transfer") as err:
        predict(calib, "a100-sxm4-40gb", "bf16", "decode", 1e12, 1e9)
    assert "transfer=True" not in str(err.value)
    with pytest.raises(UserError, match="no bf16 decode fit for Synthetic CPU"):
        predict(calib, HW, "bf16", "decode", 1e12, 1e9)
    # the dtype left to the calibration: still the --transfer message, not "0 dtypes"
    with pytest.raises(UserError, match="not on a100-sxm4-40gb; applying it to another accelerator needs --transfer"):
        calib.dtype_for("a100-sxm4-40gb", "decode")
    assert calib.dtype_for("a100-sxm4-40gb", "decode", transfer=True) == "fp16"


def test_apply_transfer_uses_the_targets_datasheet_peaks(calib):
    fit, model, label = find_fit(calib, "h100-sxm", "bf16", "decode", transfer=True)
    assert fit.hardware == HW and model.eta_compute == fit.eta_compute
    assert model.peak_flops_per_s == pytest.approx(989e12, rel=0.01)
    assert label == "transferred from Synthetic CPU (fp16 decode) to h100-sxm bf16"
    assert predict_detail(calib, "h100-sxm", "bf16", "decode", 1e12, 1e9, transfer=True)["peak_source"] == "datasheet"


def test_apply_predict_workload_counts_with_the_cost_model(calib):
    shape = load_model_shape("tiny")
    est = predict_workload(calib, shape, "prefill", 2, 64, hardware=HW, dtype="fp16")
    assert est["tokens_per_step"] == 128 and est["bytes_per_step"] is None
    assert est["tokens_per_s_per_accelerator"] == pytest.approx(128 / est["step_time_s"])
    decode = predict_workload(calib, shape, "decode", 4, 64, hardware=HW, dtype="fp16")
    assert decode["tokens_per_step"] == 4 and decode["bytes_per_step"] > 0
    with pytest.raises(UserError, match="batch size must be a whole number"):
        predict_workload(calib, shape, "decode", 1.5, 64, hardware=HW, dtype="fp16")


def test_apply_needs_a_fit_for_the_phase(plant):
    calib = fit_calibration(plant.frame(phases=("prefill",), seqs=(8, 32, 128), batches=(1, 2)))
    with pytest.raises(UserError, match="the calibration has no decode fit; it has: Synthetic CPU fp16 prefill"):
        calib.hardware_for("decode")


def test_apply_estimates_need_a_fit_for_their_phase(plant):
    """The estimate layer applies the calibration the same way: a phase without a fit is refused, one with a fit
    is priced as t seconds of one accelerator per step."""
    from llmecon.estimate.inference import estimate_inference

    calib = fit_calibration(plant.frame(phases=("prefill",), seqs=(8, 32, 128), batches=(1, 2)))
    with pytest.raises(UserError, match="the calibration has no decode fit; it has: Synthetic CPU fp16 prefill"):
        estimate_inference("tiny", calibration=calib, phase="decode", usd_per_hour=1.0)
    est = estimate_inference("tiny", calibration=calib, phase="prefill", batch_size=2, context_len=64,
                             usd_per_hour=1.0)
    assert est["flops_per_step"] / est["flops_per_token"] == pytest.approx(128) and est["bytes_per_step"] is None
    assert est["usd_per_1k_tokens"] > 0
    assert est["seconds_per_1k_tokens"] == pytest.approx(est["step_time_s"] / 128 * 1e3)


def test_apply_priceable_mfu_refuses_an_impossible_utilization():
    with pytest.raises(UserError, match="outside"):
        priceable_mfu({"effective_mfu": 1.7, "peak_source": "measured_ceiling", "label": "calibrated on X"})
    assert priceable_mfu({"effective_mfu": 0.3, "peak_source": "datasheet", "label": ""}) == 0.3


def test_apply_default_hardware_must_be_unambiguous(plant):
    a = plant.frame(phases=("decode",), device_name="CPU A", run_id="run-a")
    b = plant.frame(phases=("decode",), device_name="CPU B", run_id="run-b", eta_c=0.2)
    calib = fit_calibration(pd.concat([a, b], ignore_index=True))
    with pytest.raises(UserError, match="covers 2 accelerators for decode .*choose one with --hardware"):
        calib.hardware_for("decode")
    assert fit_calibration(a).hardware_for("decode") == "CPU A"


@pytest.fixture(scope="module")
def deep_calib(plant):
    """Decode and prefill of models of 2, 6 and 12 layers, planted with t0 0.5 ms and τ 0.25 ms per layer."""
    frames = []
    for L in (2, 6, 12):
        for phases, kw in ((("decode",), {}), (("prefill",), {"seqs": (8, 32, 128), "batches": (1, 2, 4)})):
            frames.append(plant.frame(phases=phases, model=f"synthetic-{L}l", layers=L, work_scale=L / 12, tau=2.5e-4,
                                      t0=5e-4, noise=0.0, seed=L, **kw))
    return fit_calibration(pd.concat(frames, ignore_index=True))


def test_apply_per_layer_overhead_uses_the_workloads_depth(deep_calib):
    fit = deep_calib.fits[0]
    assert fit.tau_s_per_layer == pytest.approx(2.5e-4, rel=1e-3)
    with pytest.raises(UserError, match="number of decoder layers is required"):
        predict(deep_calib, HW, "fp16", "decode", 1e9, 1e8)
    shallow = predict_detail(deep_calib, HW, "fp16", "decode", 1e9, 1e8, layers=2)
    deep = predict_detail(deep_calib, HW, "fp16", "decode", 1e9, 1e8, layers=32)
    assert deep["step_time_s"] - shallow["step_time_s"] == pytest.approx(30 * 2.5e-4, rel=1e-3)
    assert deep["terms_s"]["overhead"] == pytest.approx(5e-4 + 32 * 2.5e-4, rel=1e-3)
    assert not shallow["extrapolated"] and deep["extrapolated"]          # 32 layers: beyond the measured 2..12
    assert shallow["heldout_by_model_median_rel_error"] is not None and deep["tau_s_per_layer"] == fit.tau_s_per_layer


def test_apply_predict_workload_counts_the_models_layers(deep_calib):
    tiny, eight_b = load_model_shape("tiny"), load_model_shape("llama-3-8b")
    a = predict_workload(deep_calib, tiny, "prefill", 1, 8, hardware=HW, dtype="fp16")
    b = predict_workload(deep_calib, eight_b, "prefill", 1, 8, hardware=HW, dtype="fp16")
    assert a["layers"] == 2 and b["layers"] == 32
    assert b["terms_s"]["overhead"] - a["terms_s"]["overhead"] == pytest.approx(30 * 2.5e-4, rel=1e-3)
    assert a["model_measured"] is False                    # the fit measured synthetic-*l models, not tiny
    # a transfer carries τ with the η's and t0
    t = predict_workload(deep_calib, eight_b, "decode", 1, 128, hardware="h100-sxm", dtype="bf16", transfer=True)
    assert t["tau_s_per_layer"] == pytest.approx(2.5e-4, rel=1e-3) and t["terms_s"]["overhead"] > 32 * 2.4e-4
