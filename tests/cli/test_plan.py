"""`llmecon plan serve`: the table with the plan marked, JSON, the figure, and bad input in one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmecon.calibration.fit import fit_calibration
from llmecon.cli import main


@pytest.fixture(scope="module")
def calib_file(plant, tmp_path_factory):
    return str(fit_calibration(plant.report_frame()).save(tmp_path_factory.mktemp("cal") / "calibration.json"))


def run(calib_file, *extra):
    return CliRunner().invoke(main, ["plan", "serve", "--model", "tiny", "--calibration", calib_file,
                                     "--prompt-tokens", "128", "--output-tokens", "32", "--usd-per-hour", "1",
                                     "--memory", "2G", *extra])


def test_plan_serve_prints_the_table_and_the_plan(calib_file):
    out = run(calib_file, "--tpot-slo", "5ms")
    assert out.exit_code == 0, out.output
    assert "▶" in out.output and "plan: " in out.output and "bound by tpot" in out.output


def test_plan_serve_json_and_plot(calib_file, tmp_path):
    png = tmp_path / "plan.png"
    out = run(calib_file, "--tpot-slo", "5ms", "--json", "--plot", str(png))
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["plan"]["tpot_s"] <= 0.005 and doc["binding"] == "tpot"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra,message", [(["--tpot-slo", "0ms"], "--tpot-slo must be > 0"),
                                           (["--concurrency", "1,999999999"], "its KV cache does not fit")])
def test_plan_serve_bad_input_is_one_line(calib_file, extra, message):
    out = run(calib_file, *extra)
    assert out.exit_code == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
