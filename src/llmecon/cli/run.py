"""`llmecon run`: the main job — bench this machine, calibrate, price, report."""

from __future__ import annotations

import click

from llmecon.api import run as run_main_job
from llmecon.cli._output import warn
from llmecon.cli._views import print_calibration, print_costs, print_measurements
from llmecon.errors import UserError
from llmecon.estimate.costs import wide
from llmecon.vocab import DEFAULT_OUT, DEFAULT_PRICE_TERM


@click.command("run")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Folder for runs/, calibration.json, costs.csv and report/ (results/ is for runs worth keeping).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--term", default=DEFAULT_PRICE_TERM, show_default=True,
              help="Price term of the offers priced: on_demand, 1yr, 3yr or spot.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(out_dir, device, term, quiet) -> None:
    """Bench this machine, calibrate, print the cost table, write the report.

    The suite is sized for the device: the tiny preset on a CPU (under a minute on 2 cores), a ~1B
    and an ~8B Llama in bf16 on a GPU (minutes). Costs are $ per 1M tokens at the efficiency just
    measured, on each accelerator's cheapest offer of --term; on an accelerator other than the one
    measured, the measured efficiency is transferred to its datasheet peaks and labelled "transfer".

    \b
    Examples:
      llmecon run                       everything lands in llmecon-out/
      llmecon run --out /tmp/llmecon --device cpu --term spot
    """
    def log(msg: str) -> None:
        if not quiet:
            click.echo(f"llmecon: {msg}", err=True)

    job = run_main_job(out_dir, device=device, term=term, progress=not quiet, on_run_dir=lambda d: log(f"run folder {d}"),
                       log=log)
    for problem in job.results.problems:
        warn(problem)
    frame = job.results.frame
    noisy = int(frame["warnings"].fillna("").str.contains("noisy").sum())
    print_measurements(frame, f"Measured on {job.device}: {job.run_dir.name}")
    click.echo(f"Measured {job.n_records} configuration(s) on {job.device} ({job.n_valid} valid"
               + (f"; {noisy} flagged noisy" if noisy else "") + ").")
    if job.calibration is not None:
        print_calibration(job.calibration)
        if job.costs is not None and len(job.costs):
            print_costs(wide(job.costs), ", ".join(job.calibration.measured_on()), job.term)
        else:
            click.echo("No cost table: " + ("; ".join(job.cost_notes[:3]) or "no price could be applied"))
        for note in job.cost_notes:
            if note.startswith("presets not priced"):
                click.echo(f"Larger {note}.")
    click.echo("")
    click.echo(f"run folder:   {job.run_dir}")
    if job.calibration_path is not None:
        click.echo(f"calibration:  {job.calibration_path}")
    if job.costs_path is not None:
        click.echo(f"cost table:   {job.costs_path}")
    click.echo(f"report:       {job.report_path}")
    if job.calibration_error:
        raise UserError(f"could not calibrate, so no costs (the report shows the measurements): {job.calibration_error}")


COMMAND = run
