"""Reference calibrations from published points: each kind of point becomes the step it measured (or is left out
with its reason), and a fit of points made by a known step-time model gives that model back, labelled published."""

from __future__ import annotations

import json

import pytest

from llmecon.calibration.published import fit_published, published_rows, write_shipped
from llmecon.calibration.reference import SHIPPED
from llmecon.costmodel import flops as cf
from llmecon.costmodel import memory as cm
from llmecon_test_published_points import ENGINE, P, SHAPE, TRUE, decode_point, mine, prefill_point, sheet

def test_published_rows_decode_step_is_batch_over_rate(tmp_path):
    rows, skipped = published_rows(mine(sheet(tmp_path, [decode_point(8, 512)])))
    assert not skipped and len(rows) == 1
    r = rows.iloc[0]
    assert r["phase"] == "decode" and r["batch_size"] == 8 and r["seq_len"] == 512
    expected, _ = TRUE["decode"].step_time_s(r["flops_per_step_executed"], r["bytes_per_step"])
    assert r["step_time_s"] == pytest.approx(expected, rel=1e-12)
    assert r["bytes_per_step"] == cm.decode_step_bytes(SHAPE, "bf16", 8, 512)
    assert r["peak_flops_per_s"] == P and r["source"] == "https://example.org/a"


def test_published_rows_generate_takes_the_prefill_off_then_divides_by_the_decode_steps(tmp_path):
    B, I, O = 16, 256, 128
    prefill_s = TRUE["prefill"].step_time_s(cf.prefill_flops(SHAPE, B, I, "executed"), None)[0]
    mid = I + O // 2
    decode_s = TRUE["decode"].step_time_s(cf.decode_step_flops(SHAPE, B, mid, "executed"),
                                          cm.decode_step_bytes(SHAPE, "bf16", B, mid))[0]
    total = prefill_s + (O - 1) * decode_s
    gen = {"phase": "generate", "batch_size": B, "input_len": I, "output_len": O, "value": repr(B * O / total),
           "unit": "tokens/s/accelerator"}
    rows, skipped = published_rows(mine(sheet(tmp_path, [prefill_point(1, 128), prefill_point(1, 2048), gen])))
    assert not skipped
    derived = rows[rows["phase"] == "decode"].iloc[0]
    assert derived["seq_len"] == mid and derived["step_time_s"] == pytest.approx(decode_s, rel=1e-9)


@pytest.mark.parametrize("row,reason", [
    ({"phase": "serve", "input_len": 128, "output_len": 128, "value": 100, "unit": "tokens/s"}, "serving run"),
    (decode_point(1, 128) | {"weights": "int8"}, "weight-only int8"),
    (decode_point(1, 128) | {"accelerator_count": 2, "parallelism": "tp=2"}, "inference on 2 accelerators"),
    ({"phase": "generate", "batch_size": 8, "input_len": 128, "output_len": 128, "value": 100, "unit": "tokens/s"},
     "no synthetic-engine prefill points"),
    (decode_point(1, 128) | {"dtype": "fp32", "accelerator_id": "tpu-v4"}, "no dense fp32 peak"),
])
def test_published_rows_leave_out_what_gives_no_step_with_the_reason(tmp_path, row, reason):
    rows, skipped = published_rows(mine(sheet(tmp_path, [row])))
    assert len(rows) == 0 and len(skipped) == 1 and reason in skipped[0].reason, skipped


def test_published_rows_train_mfu_is_flops_over_mfu_times_peak(tmp_path):
    row = {"phase": "train", "accelerator_count": 64, "batch_size": 128, "seq_len": 4096, "value": 40, "unit": "%MFU"}
    rows, _ = published_rows(mine(sheet(tmp_path, [row])))
    r = rows.iloc[0]
    F = cf.train_step_flops(SHAPE, 128, 4096, "executed") / 64
    assert r["flops_per_step_executed"] == pytest.approx(F) and r["step_time_s"] == pytest.approx(F / (0.4 * P))


def test_fit_published_recovers_the_model_that_made_the_points(tmp_path):
    points = [decode_point(b, c) for b, c in ((1, 128), (8, 1024), (32, 2048), (64, 4096), (128, 512))]
    points[3]["source"] = "https://example.org/b"
    fitted = fit_published([sheet(tmp_path, points)]).calibrations[ENGINE]
    assert fitted.basis == "published" and fitted.engine == ENGINE
    (fit,) = [f for f in fitted.fits if f.hardware == "h100-sxm"]
    assert fit.eta_compute == pytest.approx(0.5, rel=1e-6) and fit.eta_memory == pytest.approx(0.8, rel=1e-6)
    assert fit.t0_s == pytest.approx(2e-3, rel=1e-6) and fit.heldout.median_rel_error < 1e-6
    assert fit.sources == ["https://example.org/a", "https://example.org/b"]
    assert sorted(fit.run_ids) == sorted(f"p{i}-points" for i in range(5))


def test_fit_published_says_why_an_engine_has_no_fit(tmp_path):
    got = fit_published([sheet(tmp_path, [decode_point(1, 128), decode_point(8, 512)])])
    assert ENGINE not in got.calibrations and "too few rows" in got.unfitted[ENGINE]
    assert {s.id for s in got.skipped if s.engine == ENGINE} == {"p0-points", "p1-points"}


def test_shipped_reference_calibrations_equal_a_fresh_fit_of_the_builtin_sheet(tmp_path):
    """The shipped file is data generated from the sheet: regenerate it (python -m llmecon.calibration.published)
    whenever the sheet, the presets, the hardware sheet or the fit changes."""
    fresh = json.loads(write_shipped(tmp_path / "fresh.json").read_text())
    assert json.loads(SHIPPED.read_text()) == fresh
