"""`llmecon run` end to end on this CPU: bench the default suite, calibrate every phase, price, report, and say
where (slow: it benches for real, under a minute on 2 cores); and the same command on a planted bench."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.measure.spec import default_suite


@pytest.fixture(scope="module")
def job(real_run_job):
    """The real `llmecon run` of this session (tests/conftest.py: benched once, shared with test_calibrate.py,
    which only reads it)."""
    return real_run_job


def _said(output: str, label: str) -> Path:
    m = re.search(rf"^{label}:\s+(\S+)$", output, re.M)
    assert m, f"`llmecon run` did not say where the {label} went:\n{output}"
    return Path(m.group(1))


def _calibrated(res) -> bool:
    """A real `llmecon run` on this CPU calibrates: rounds and one thread make the tiny model's timings steady
    enough to fit every phase (docs/measuring.md §3)."""
    assert res.exit_code == 0, res.output
    return True


@pytest.mark.slow
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
    assert calibrated
    calibration = _said(res.output, "calibration")
    assert calibration == out / "calibration.json"
    calib = json.loads(calibration.read_text())
    assert calib["kind"] == "llmecon-calibration" and not calib["refused"]
    assert sorted(f["phase"] for f in calib["fits"]) == ["decode", "prefill", "train"]   # every phase, fitted
    assert all(f["heldout"]["median_rel_error"] < 0.5 for f in calib["fits"])
    assert "±" in res.output   # the measurements table shows each row's noise
    assert calib["provenance"]["run_ids"] == [run_dir.name]
    assert "$ per 1M tokens at measured efficiency, cheapest on-demand offer" in res.output
    assert "transfer" in res.output and "on-demand" in res.output   # the term on every row
    assert _said(res.output, "cost table") == out / "costs.csv"
    costs = (out / "costs.csv").read_text().splitlines()
    assert costs[0].startswith("model,accelerator_id,phase") and len(costs) > 2


def _figures(page: str) -> list[str]:
    return re.findall(r"<figure class='plot' data-figure='([a-z_]+)'", page)


@pytest.mark.slow
def test_run_report_has_the_figures(job):
    out, res = job
    calibrated = _calibrated(res)
    page = (out / "report" / "index.html").read_text()
    names = _figures(page)
    assert {"utilization", "roofline"} <= set(names)
    if calibrated:
        assert "measured_vs_predicted" in names and "calibration.json" in page
    assert "tiny" in page


@pytest.mark.slow
def test_run_report_renders_in_headless_chromium(job, tmp_path, chromium):
    out, _ = job
    page = out / "report" / "index.html"
    chromium.assert_all_figures_loaded(chromium.render(page, tmp_path), len(_figures(page.read_text())))


@pytest.mark.slow
def test_run_report_command_on_the_runs_folder(job, tmp_path):
    out, res = job
    args = ["report", str(out / "runs"), "-o", str(tmp_path / "r")]
    if _calibrated(res):
        args += ["--calibration", str(out / "calibration.json")]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert f"wrote {tmp_path / 'r' / 'index.html'}" in again.output
    assert "data-figure='utilization'" in (tmp_path / "r" / "index.html").read_text()


@pytest.mark.slow
def test_run_results_list_finds_what_run_wrote(job):
    out, _ = job
    listed = CliRunner().invoke(main, ["results", "list", str(out), "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 1


# ---- the same command on a planted bench: deterministic, it calibrates for sure ------------------------------

@pytest.fixture
def planted_bench(monkeypatch, plant):
    """`llmecon run` with the bench replaced by a planted run written where the bench would have written its run
    (every phase at enough shapes to calibrate: η_c 0.4, η_m 0.7, t0 2 ms)."""
    def fake(spec, out_dir, *, resume=None, progress=True, on_run_dir=None):
        run = plant.planted_run(out_dir, dtype="fp32", batches=(1, 8, 32), seqs=(128, 2048))
        if on_run_dir is not None:
            on_run_dir(run)
        return run

    monkeypatch.setattr("llmecon.pipeline.run_bench", fake)


@pytest.mark.parametrize("term,shown", [("on_demand", "on-demand"), ("1yr", "1-year"), ("spot", "spot")])
def test_run_planted_term_prices_that_terms_offers_on_every_row(planted_bench, tmp_path, term, shown):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "--out", str(out), "--device", "cpu", "--quiet", "--term", term])
    assert res.exit_code == 0, res.output                  # a planted run calibrates: no "could not calibrate"
    assert _said(res.output, "calibration") == out / "calibration.json"
    assert _said(res.output, "cost table") == out / "costs.csv"
    with (out / "costs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["term"] for r in rows} == {shown.replace("-", "_")}
    # the printed cost table: one row per accelerator of costs.csv, each with the term
    table = [line for line in res.output.splitlines() if line.startswith("│ ")]
    priced = [line for line in table if any(f"│ {r['accelerator_id']} " in line for r in rows)]
    assert len(priced) == len({(r["model"], r["accelerator_id"]) for r in rows})
    assert all(f"│ {shown} " in line for line in priced), "\n".join(priced)
    assert f"cheapest {shown} offer" in " ".join(res.output.split())   # the term as the rows spell it, not as typed
