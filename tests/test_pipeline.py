"""The jobs that span layers: report_inputs (loaded once, priced once), build_report, and the main job with its
outputs (calibration.json, costs.csv and the report's cost section are the same numbers)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from llmecon.calibration.fit import calibrate_results
from llmecon.errors import UserError
from llmecon.measure.spec import BenchSpec
from llmecon.pipeline import build_report, report_inputs, run_main_job
from llmecon.records.load import load_results
from llmecon.render.html import write_report
from llmecon.units import usd


@pytest.fixture(scope="module")
def planted(tmp_path_factory, plant):
    """A planted CPU run with every phase at enough shapes to calibrate (η_c 0.4, η_m 0.7, t0 2 ms)."""
    return plant.planted_run(tmp_path_factory.mktemp("pipeline") / "runs", dtype="fp32", batches=(1, 8, 32),
                             seqs=(128, 2048))


def test_pipeline_report_inputs_price_and_predict_once(planted):
    res = load_results(planted)
    calib = calibrate_results(res)
    assert {f.phase for f in calib.fits} == {"prefill", "decode", "train"}     # a planted run calibrates for sure
    inputs = report_inputs(res, calibration=calib, term="spot")
    assert len(inputs.costs) and set(inputs.costs["term"]) == {"spot"}
    assert inputs.predicted_missing == 0 and len(inputs.predicted) == len(res.frame)
    assert inputs.article is not None and inputs.article_error is None
    bare = report_inputs(res)
    assert bare.costs is None and bare.article is None and bare.predicted is None


def _cost_section_rows(html: str) -> list[tuple[str, str, str, str]]:
    """(accelerator, term, phase, $ per 1M tokens) of every row of the report's cost tables."""
    section = html.split("<section id='costs'>", 1)[1].split("</section>", 1)[0]
    out = []
    for body in re.findall(r"<tbody>(.*?)</tbody>", section, re.S):
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            out.append((cells[0], cells[2], cells[4], cells[5]))
    return out


def _cost_table_rows(costs) -> list[tuple[str, str, str, str]]:
    """The same four cells of the cost table (costs.csv), as the report prints them."""
    return [(r["accelerator_id"], str(r["term"]).replace("_", "-"), r["phase"], usd(float(r["usd_per_1m_tokens"])))
            for r in costs]


@pytest.mark.parametrize("term", ["on_demand", "spot", "1yr"])
def test_pipeline_planted_run_calibrates_and_its_costs_are_the_reports_rows(planted, tmp_path, term):
    """Deterministic: a planted run calibrates every phase; the cost table report_inputs computes (what the main
    job writes to costs.csv) is exactly the report's cost section, row for row, with the term on every row."""
    res = load_results(planted)
    calib = calibrate_results(res)
    assert {f.phase for f in calib.fits} == {"prefill", "decode", "train"} and not calib.refused
    inputs = report_inputs(res, calibration=calib, term=term)
    costs = inputs.costs
    assert len(costs) and costs["term"].nunique() == 1 and costs["term"].notna().all()
    (tmp_path / "costs.csv").write_text(costs.to_csv(index=False))
    with (tmp_path / "costs.csv").open() as f:
        written = list(csv.DictReader(f))
    page = write_report(inputs, tmp_path / "report").read_text()
    shown = _cost_section_rows(page)
    assert len(shown) == len(written)
    assert sorted(shown) == sorted(_cost_table_rows(written))
    # build_report (`llmecon report`) computes the same inputs from the run on disk and the calibration's file:
    # the same rows, and the page names the file it was calibrated from
    path = calib.save(tmp_path / "calibration.json")
    page = build_report([planted], tmp_path / "again", calibration=path, term=term)
    assert page == tmp_path / "again" / "index.html"
    again = page.read_text()
    assert "data-figure='costs'" in again and str(tmp_path / "calibration.json") in again
    assert sorted(_cost_section_rows(again)) == sorted(shown)


def test_pipeline_build_report_errors_are_one_line(planted, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot write the report to"):
        build_report([planted], tmp_path / "a-file" / "report")
    with pytest.raises(UserError, match="no such results folder"):
        build_report([tmp_path / "nowhere"], tmp_path / "r")


def _planted_bench(plant):
    """run_bench, replaced: writes a planted run where the bench would have written its run."""
    def fake(spec, out_dir, *, resume=None, progress=True, on_run_dir=None):
        return plant.planted_run(out_dir, dtype="fp32", batches=(1, 8, 32), seqs=(128, 2048))
    return fake


def test_pipeline_main_job_costs_csv_is_the_reports_cost_section(tmp_path, monkeypatch, plant):
    monkeypatch.setattr("llmecon.pipeline.run_bench", _planted_bench(plant))
    job = run_main_job(tmp_path / "out", device="cpu", progress=False)
    assert job.calibration is not None and {f.phase for f in job.calibration.fits} == {"prefill", "decode", "train"}
    assert job.calibration_path == tmp_path / "out" / "calibration.json" and job.costs_path.is_file()
    with job.costs_path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(job.costs) and {r["term"] for r in rows} == {"on_demand"}
    cells = _cost_section_rows(job.report_path.read_text())
    assert cells
    # every row of costs.csv is a row of the report's cost table, with the same $ per 1M tokens
    assert sorted(cells) == sorted(_cost_table_rows(rows))


def test_pipeline_main_job_that_cannot_calibrate_still_reports_and_says_why(tmp_path, monkeypatch, plant):
    """One shape per phase cannot be fitted: the run and the report are written, no stale calibration or
    cost table is left beside them, and the reason is returned (the CLI turns it into one error line)."""
    def fake(spec, out_dir, **kw):
        return plant.planted_run(out_dir, dtype="fp32", phases=("prefill",), batches=(1,), seqs=(16,))

    monkeypatch.setattr("llmecon.pipeline.run_bench", fake)
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("calibration.json", "costs.csv"):
        (out / stale).write_text("{}")                    # a previous run's files must not survive
    job = run_main_job(out, device="cpu", progress=False)
    assert job.calibration is None and "too few" in job.calibration_error
    assert not (out / "calibration.json").exists() and not (out / "costs.csv").exists()
    page = job.report_path.read_text()
    assert "data-figure='utilization'" in page and "the calibration could not be fitted: " in page


@pytest.mark.slow
def test_pipeline_main_job_benches_for_real_in_process(tmp_path):
    """The real bench, in this process, with a sweep too small to calibrate: every path is written."""
    spec = BenchSpec(models=("tiny",), phases=("prefill",), batch_sizes=(1,), seq_lens=(16,), device="cpu",
                     min_iters=3, min_time_s=0.05, max_time_s=2.0, warmup_iters=1, rounds=1, target_rel_ci=0.0,
                     isolate=False)   # one round at its minimums: the test needs a valid record, not a precise one
    job = run_main_job(tmp_path / "out", device="cpu", spec=spec, progress=False)
    assert job.run_dir.parent == tmp_path / "out" / "runs" and (job.run_dir / "run.json").is_file()
    assert job.n_records == 1 and job.report_path.is_file() and "too few" in job.calibration_error


def test_pipeline_main_job_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="exists and is not a folder"):
        run_main_job(Path(tmp_path / "file"), device="cpu", progress=False)
