"""The main job, `llmecon run`: bench this machine, calibrate, price, report — one call.

    from llmecon.pipeline import run_main_job
    job = run_main_job("llmecon-out")
    job.report_path      # llmecon-out/report/index.html

Layout of the output folder (default `llmecon-out/`, which git ignores; `results/` is for runs worth
keeping):

    <out>/runs/<run_id>/        the bench run (run.json + one record per configuration)
    <out>/calibration.json      the fitted step-time model (`llmecon calibrate` on that run)
    <out>/costs.csv             $ per 1M tokens at measured efficiency (the printed cost table)
    <out>/report/index.html     the report: figures and tables, self-contained

Each call adds a run under runs/ and rewrites calibration.json, costs.csv and report/ from it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmecon.errors import UserError

DEFAULT_OUT = "llmecon-out"


@dataclass
class MainJob:
    """What `run_main_job` did and where it put it."""

    out_dir: Path
    device: str
    device_kind: str
    spec: Any                                   # the BenchSpec that ran
    run_dir: Path
    n_records: int = 0
    n_valid: int = 0
    calibration: dict | None = None
    calibration_path: Path | None = None
    calibration_error: str | None = None        # why there is no calibration (then no costs either)
    costs: Any = None                           # pandas DataFrame (report.costs.run_cost_table) or None
    costs_path: Path | None = None
    cost_notes: list[str] = field(default_factory=list)
    report_path: Path | None = None
    problems: list[str] = field(default_factory=list)


def run_main_job(out_dir: str | os.PathLike = DEFAULT_OUT, *, device: str = "auto", spec=None, progress: bool = True,
                 on_run_dir: Callable[[Path], None] | None = None, log: Callable[[str], None] | None = None) -> MainJob:
    """Bench `default_suite(<device kind>)` (or `spec`), fit a calibration, price the measured model and a few
    presets at the measured efficiency, and write the report. Returns a MainJob with every path.

    When the records cannot be calibrated (too few valid rows, too noisy), the run and the report are still
    written (without the cost sections) and `calibration_error` says why."""
    from llmecon.bench.probe import device_kind, resolve_device
    from llmecon.bench.runner import default_suite, run_bench
    from llmecon.calibrate.fit import fit_calibration, run_metas
    from llmecon.calibrate.schema import save_calibration
    from llmecon.report.costs import run_cost_table
    from llmecon.report.html import build_report
    from llmecon.results import load_results

    say = log or (lambda _msg: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    resolved = resolve_device(device)
    kind = device_kind(resolved)
    if spec is None:
        spec = dataclasses.replace(default_suite(kind), device=device)
    runs_dir = out / "runs"
    say(f"benchmarking {', '.join(spec.models)} on {resolved} ({', '.join(spec.phases)}; batch "
        f"{', '.join(map(str, spec.batch_sizes))}; length {', '.join(map(str, spec.seq_lens))}; {spec.dtype})")
    run_dir = run_bench(spec, runs_dir, progress=progress, on_run_dir=on_run_dir)
    job = MainJob(out_dir=out, device=resolved, device_kind=kind, spec=spec, run_dir=Path(run_dir))

    frame, problems = load_results([run_dir])
    job.problems = list(problems)
    job.n_records = int(len(frame))
    job.n_valid = int(frame["valid"].fillna(False).astype(bool).sum()) if len(frame) else 0
    if job.n_records == 0:
        raise UserError(f"the bench wrote no records to {run_dir}" + (f" ({'; '.join(problems)})" if problems else ""))

    say("calibrating")
    try:
        calib = fit_calibration(frame, run_meta=run_metas([run_dir]), sources=[str(run_dir)])
    except UserError as exc:
        job.calibration_error = str(exc)
    else:
        job.calibration = calib
        job.calibration_path = save_calibration(calib, out / "calibration.json")
        costs, notes = run_cost_table(calib, _measured_models(frame))
        job.costs, job.cost_notes = costs, notes
        if len(costs):
            job.costs_path = out / "costs.csv"
            tmp = job.costs_path.with_name(f".costs.csv.{os.getpid()}.tmp")
            costs.to_csv(tmp, index=False)
            os.replace(tmp, job.costs_path)
    for name, kept in (("calibration.json", job.calibration_path), ("costs.csv", job.costs_path)):
        stale = out / name
        if kept is None and stale.exists():   # never leave a previous run's numbers beside this run's report
            stale.unlink()

    say("writing the report")
    job.report_path = build_report([run_dir], out / "report", calibration=job.calibration_path,
                                   calibration_error=job.calibration_error)
    return job


def _measured_models(frame) -> list[str]:
    """The benched models to price: those with valid rows, in bench order."""
    valid = frame[frame["valid"].fillna(False).astype(bool)]
    return [str(m) for m in dict.fromkeys((valid if len(valid) else frame)["model"])]
