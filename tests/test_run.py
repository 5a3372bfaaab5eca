"""`llmecon run` end to end on the CPU: bench the default suite, calibrate, price, report — and say where."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main

pytestmark = pytest.mark.slow   # about a minute on 2 cores; part of the default suite


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
    """`llmecon run` exits 0 with a calibration, or 2 with one error line when the CPU timings were too noisy
    to fit any phase (a busy shared machine); both leave the run and the report."""
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
    from llmecon.bench.runner import default_suite

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
    assert "$ per 1M tokens at measured efficiency" in res.output
    assert "transfer" in res.output                        # a CPU is on no price sheet: every price is transferred
    assert _said(res.output, "cost table") == out / "costs.csv"
    costs = (out / "costs.csv").read_text().splitlines()
    assert costs[0].startswith("model,accelerator_id") and len(costs) > 2


def test_run_report_has_the_figures_and_renders(job, tmp_path):
    from test_report import _chromium, assert_all_figures_loaded, render_in_chromium

    out, res = job
    calibrated = _calibrated(res)
    page = (out / "report" / "index.html").read_text()
    names = re.findall(r"<figure class='plot' data-figure='([a-z_]+)'", page)
    assert {"utilization", "roofline"} <= set(names)
    if calibrated:
        assert "measured_vs_predicted" in names and "calibration.json" in page
    assert "tiny" in page
    if _chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    assert_all_figures_loaded(render_in_chromium(out / "report" / "index.html", tmp_path), len(names))


def test_report_command_on_the_run(job, tmp_path):
    out, res = job
    calibrated = _calibrated(res)
    args = ["report", str(out / "runs"), "-o", str(tmp_path / "r")]
    if calibrated:
        args += ["--calibration", str(out / "calibration.json")]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert f"wrote {tmp_path / 'r' / 'index.html'}" in again.output
    assert "data-figure='utilization'" in (tmp_path / "r" / "index.html").read_text()


def test_run_that_cannot_calibrate_still_reports_and_says_why(tmp_path):
    """One shape per phase cannot be fitted: the run and the report are written, no stale calibration is
    left beside them, and the reason is returned (the CLI turns it into one error line)."""
    from llmecon.bench.runner import BenchSpec
    from llmecon.pipeline import run_main_job

    out = tmp_path / "out"
    out.mkdir()
    (out / "calibration.json").write_text("{}")          # a previous run's file must not survive
    spec = BenchSpec(models=("tiny",), phases=("prefill",), batch_sizes=(1,), seq_lens=(16,), device="cpu",
                     min_iters=3, min_time_s=0.05, max_time_s=2.0, warmup_iters=1, isolate=False)
    job = run_main_job(out, device="cpu", spec=spec, progress=False)
    assert job.calibration is None and "too few" in job.calibration_error
    assert not (out / "calibration.json").exists()
    assert (job.run_dir / "run.json").is_file() and job.report_path.is_file()
    page = job.report_path.read_text()
    assert "data-figure='utilization'" in page and "the calibration could not be fitted: " in page
