"""`llmecon run` end to end on this CPU: bench the default suite, calibrate, price, report, and say where."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.measure.spec import default_suite

pytestmark = pytest.mark.slow   # about half a minute on 2 cores: it benches for real (worker processes)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("llmecon-run") / "out"
    res = CliRunner().invoke(main, ["run", "--out", str(out), "--device", "cpu", "--quiet"])
    return out, res


def _said(output: str, label: str) -> Path:
    m = re.search(rf"^{label}:\s+(\S+)$", output, re.M)
    assert m, f"`llmecon run` did not say where the {label} went:\n{output}"
    return Path(m.group(1))


def _calibrated(res) -> bool:
    """`llmecon run` exits 0 with a calibration, or 2 with one error line when the CPU timings were too noisy to
    fit any phase on a busy shared machine (tests/test_pipeline.py checks the calibrated path deterministically);
    both leave the run and the report."""
    if res.exit_code == 2:
        assert "llmecon: error: could not calibrate" in res.output, res.output
        return False
    assert res.exit_code == 0, res.output
    return True


def test_run_writes_run_calibration_costs_and_report_and_says_where(job):
    out, res = job
    calibrated = _calibrated(res)
    run_dir = _said(res.output, "run folder")
    report = _said(res.output, "report")
    assert run_dir.parent == out / "runs" and (run_dir / "run.json").is_file()
    suite = default_suite("cpu")
    n = len(suite.models) * len(suite.phases) * len(suite.batch_sizes) * len(suite.seq_lens)
    assert len(list((run_dir / "records").glob("*.json"))) == n
    assert report == out / "report" / "index.html" and report.stat().st_size > 10_000
    assert f"Measured {n} configuration(s) on cpu" in res.output
    if not calibrated:
        assert not (out / "calibration.json").exists()
        assert "the calibration could not be fitted" in report.read_text()
        return
    calibration = _said(res.output, "calibration")
    assert calibration == out / "calibration.json"
    calib = json.loads(calibration.read_text())
    assert calib["kind"] == "llmecon-calibration" and calib["fits"]
    assert calib["provenance"]["run_ids"] == [run_dir.name]
    assert "$ per 1M tokens at measured efficiency, cheapest on-demand offer" in res.output
    assert "transfer" in res.output and "on-demand" in res.output   # the term on every row
    assert _said(res.output, "cost table") == out / "costs.csv"
    costs = (out / "costs.csv").read_text().splitlines()
    assert costs[0].startswith("model,accelerator_id,phase") and len(costs) > 2


def test_run_report_has_the_figures_and_renders(job, tmp_path, chromium):
    out, res = job
    calibrated = _calibrated(res)
    page = (out / "report" / "index.html").read_text()
    names = re.findall(r"<figure class='plot' data-figure='([a-z_]+)'", page)
    assert {"utilization", "roofline"} <= set(names)
    if calibrated:
        assert "measured_vs_predicted" in names and "calibration.json" in page
    assert "tiny" in page
    chromium.assert_all_figures_loaded(chromium.render(out / "report" / "index.html", tmp_path), len(names))


def test_run_results_list_finds_what_run_wrote(job):
    out, _ = job
    listed = CliRunner().invoke(main, ["results", "list", str(out), "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 1
