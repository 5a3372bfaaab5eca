"""The jobs that take several layers: the main job (`llmecon run`) and the report (`llmecon report`).

    job = run_main_job("llmecon-out")        # bench -> load once -> fit -> price -> render
    job.report_path                           # llmecon-out/report/index.html

Layout of the output folder (default `llmecon-out/`, which git ignores; `results/` is for runs worth keeping):

    <out>/runs/<run_id>/        the bench run (run.json + one record per configuration)
    <out>/calibration.json      the fitted step-time model (`llmecon calibrate` on that run)
    <out>/costs.csv             $ per 1M tokens at measured efficiency (the cost table, as in the report)
    <out>/report/index.html     the report: figures and tables, self-contained

Each call adds a run under runs/ and rewrites calibration.json, costs.csv and report/ from it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from llmecon.measure.probe import device_kind, resolve_device
from llmecon.measure.runner import run_bench
from llmecon.measure.spec import BenchSpec, default_suite
from llmecon.calibration.document import Calibration
from llmecon.calibration.fit import calibrate_results, predicted_points
from llmecon.costmodel.prices import parse_term
from llmecon.errors import UserError
from llmecon.estimate.article import calibrated_article
from llmecon.estimate.serving import plan_serve
from llmecon.estimate.costs import cost_table
from llmecon.files import atomic_write_text
from llmecon.records.load import Results, load_results
from llmecon.render.html import ReportInputs, write_report
from llmecon.vocab import DEFAULT_OUT, DEFAULT_PRICE_TERM, RUNS_FOLDER


REPORT_PROMPT_TOKENS, REPORT_OUTPUT_TOKENS = 512, 128   # the report's serving plan: a stated request shape


def measured_models(frame: pd.DataFrame) -> list[str]:
    """The benched models (as given to bench) with valid rows, in bench order; all of them if none is valid."""
    valid = frame[frame["valid"].fillna(False).astype(bool)]
    return [str(m) for m in dict.fromkeys((valid if len(valid) else frame)["model_spec"])]


def report_inputs(results: Results, *, calibration: Calibration | None = None, calibration_source: str | None = None,
                  calibration_error: str | None = None, term: str = DEFAULT_PRICE_TERM,
                  title: str | None = None, tpot_slo=None) -> ReportInputs:
    """Everything the report shows, computed once: the cost table (also costs.csv), the calibrated article,
    the calibration's predictions of the measured rows, and a serving plan of the first measured model on the
    calibrated device (REPORT_PROMPT_TOKENS + REPORT_OUTPUT_TOKENS per request, $1 per accelerator-hour: costs
    scale with the price) at ``tpot_slo`` when given."""
    term = parse_term(term)
    inputs = ReportInputs(results=results, calibration=calibration, calibration_source=calibration_source,
                          calibration_error=calibration_error, term=term, title=title)
    if calibration is None:
        return inputs
    frame = results.require_rows()
    inputs.costs, inputs.cost_notes = cost_table(calibration, measured_models(frame), term=term)
    inputs.predicted, inputs.predicted_missing = predicted_points(frame, calibration)
    try:
        inputs.article = calibrated_article(calibration, transfer=True)
    except UserError as exc:
        inputs.article_error = str(exc)
    try:
        inputs.serving = plan_serve(measured_models(frame)[0], calibration=calibration,
                                    prompt_tokens=REPORT_PROMPT_TOKENS, output_tokens=REPORT_OUTPUT_TOKENS,
                                    tpot_slo=tpot_slo, usd_per_hour=1.0)
    except UserError as exc:
        inputs.serving_error = str(exc)
    return inputs


def build_report(runs, out_dir="report", *, calibration=None, term: str = DEFAULT_PRICE_TERM,
                 title: str | None = None, tpot_slo=None) -> Path:
    """Load the runs once, price and render them; write ``out_dir/index.html`` and return its path.
    ``calibration``: a Calibration or the path of its file."""
    results = load_results(runs)
    results.require_rows()
    source = None
    if calibration is not None and not isinstance(calibration, Calibration):
        source, calibration = str(calibration), Calibration.load(calibration)
    return write_report(report_inputs(results, calibration=calibration, calibration_source=source, term=term,
                                      title=title, tpot_slo=tpot_slo), out_dir)


@dataclass
class MainJob:
    """What `run_main_job` did and where it put it."""

    out_dir: Path
    device: str
    device_kind: str
    spec: BenchSpec
    run_dir: Path
    term: str = DEFAULT_PRICE_TERM               # the price term, as the sheet spells it
    results: Results | None = None
    n_records: int = 0
    n_valid: int = 0
    calibration: Calibration | None = None
    calibration_path: Path | None = None
    calibration_error: str | None = None        # why there is no calibration (then no costs either)
    costs: pd.DataFrame | None = None           # estimate.costs.cost_table, as written to costs.csv
    costs_path: Path | None = None
    cost_notes: list[str] = field(default_factory=list)
    report_path: Path | None = None


def run_main_job(out_dir: str | os.PathLike = DEFAULT_OUT, *, device: str = "auto", spec: BenchSpec | None = None,
                 term: str = DEFAULT_PRICE_TERM, progress: bool = True,
                 on_run_dir: Callable[[Path], None] | None = None,
                 log: Callable[[str], None] | None = None) -> MainJob:
    """Bench `default_suite(<device kind>)` (or ``spec``), fit a calibration, price the measured model and a few
    presets at the measured efficiency, and write the report. Returns a MainJob with every path.

    When the records cannot be calibrated (too few valid rows, too noisy), the run and the report are still
    written (without the cost sections) and ``calibration_error`` says why."""
    say = log or (lambda _msg: None)
    term = parse_term(term)  # refused before anything is measured
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    resolved = resolve_device(device)
    kind = device_kind(resolved)
    spec = spec or dataclasses.replace(default_suite(kind), device=device)
    say(f"benchmarking {', '.join(spec.models)} on {resolved} ({', '.join(spec.phases)}; batch "
        f"{', '.join(map(str, spec.batch_sizes))}; length {', '.join(map(str, spec.seq_lens))}; "
        f"{spec.resolved_dtype(kind)})")
    run_dir = run_bench(spec, out / RUNS_FOLDER, progress=progress, on_run_dir=on_run_dir)
    job = MainJob(out_dir=out, device=resolved, device_kind=kind, spec=spec, run_dir=Path(run_dir), term=term)
    job.results = load_results([run_dir])
    frame = job.results.require_rows()
    job.n_records, job.n_valid = len(frame), int(frame["valid"].sum())

    say("calibrating")
    try:
        job.calibration = calibrate_results(job.results)
    except UserError as exc:
        job.calibration_error = str(exc)
    else:
        job.calibration_path = job.calibration.save(out / "calibration.json")
    inputs = report_inputs(job.results, calibration=job.calibration,
                           calibration_source=str(job.calibration_path) if job.calibration_path else None,
                           calibration_error=job.calibration_error, term=term)
    job.costs, job.cost_notes = inputs.costs, inputs.cost_notes
    if job.costs is not None and len(job.costs):
        job.costs_path = atomic_write_text(out / "costs.csv", job.costs.to_csv(index=False))
    for name, kept in (("calibration.json", job.calibration_path), ("costs.csv", job.costs_path)):
        if kept is None and (out / name).exists():   # never leave a previous run's numbers beside this run's report
            (out / name).unlink()
    say("writing the report")
    job.report_path = write_report(inputs, out / "report")
    return job
