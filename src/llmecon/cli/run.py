"""`llmecon run`: the main job — bench this machine, calibrate, price, report."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from llmecon.cli._common import console, table


@click.command("run")
@click.option("--out", "out_dir", default="llmecon-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the run, calibration.json, costs.csv and report/ (results/ is for runs worth keeping).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(out_dir, device, quiet) -> None:
    """Bench the default suite for this device, calibrate, print the cost table, write the report.

    On a CPU the suite is the tiny model (a minute or two); on a GPU a ~1B and an ~8B model (minutes).
    Costs are $ per 1M tokens at the efficiency just measured; on an accelerator other than the one
    measured, the measured efficiency is transferred to its datasheet peaks and labelled "transfer".

    \b
    Example:
      llmecon run                       everything lands in llmecon-out/
      llmecon run --out /tmp/llmecon --device cpu
    """
    from llmecon.errors import UserError
    from llmecon.pipeline import run_main_job

    def log(msg: str) -> None:
        if not quiet:
            click.echo(f"llmecon: {msg}", err=True)

    job = run_main_job(out_dir, device=device, progress=not quiet, log=log,
                       on_run_dir=lambda d: log(f"run folder {d}"))
    for p in job.problems:
        click.echo(f"llmecon: warning: {p}", err=True)
    click.echo(f"Measured {job.n_records} configuration(s) on {job.device} ({job.n_valid} valid).")
    if job.calibration is not None:
        from llmecon.cli.calibrate import print_calibration

        with _wide_console():
            print_calibration(job.calibration)
        for entry in job.calibration.get("refused") or ():
            click.echo(f"llmecon: warning: not fitted: {entry['hardware']} {entry['dtype']} {entry['phase']}: "
                       f"{entry['refused']}", err=True)
        _print_costs(job)
    click.echo("")
    click.echo(f"run folder:   {job.run_dir}")
    if job.calibration_path is not None:
        click.echo(f"calibration:  {job.calibration_path}")
    if job.costs_path is not None:
        click.echo(f"cost table:   {job.costs_path}")
    click.echo(f"report:       {job.report_path}")
    if job.calibration_error:
        raise UserError(f"could not calibrate, so no costs (the report shows the measurements): {job.calibration_error}")


@contextlib.contextmanager
def _wide_console(columns: int = 150):
    """Into a pipe or a log file, print tables at a readable width instead of rich's 80 columns."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        yield
        return
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        os.environ.pop("COLUMNS", None)


def _print_costs(job) -> None:
    from llmecon.units import pct, usd

    costs = job.costs
    if costs is None or len(costs) == 0:
        click.echo("No cost table: " + ("; ".join(job.cost_notes[:3]) or "no price could be applied"))
        return

    def val(r, col, fmt):
        v = r.get(col)
        return fmt(v) if v is not None and v == v else None

    def mfu(v):
        return f"{100 * v:.2g}%" if 0 < v < 0.001 else pct(v)

    rows = []
    for r in costs.to_dict(orient="records"):
        basis = "transfer" if r.get("transfer") else "measured"
        if r.get("extrapolated"):
            basis += ", extrapolated"
        rows.append([r["model"], r["accelerator_id"], f"{usd(r['usd_per_accelerator_hour'])}/h",
                     val(r, "usd_per_1m_prefill_tokens", usd), val(r, "usd_per_1m_decode_tokens", usd),
                     val(r, "decode_mfu", mfu), val(r, "decode_regime", str), basis])
    first = costs.iloc[0]
    measured_on = ", ".join(sorted({f["hardware"] for f in (job.calibration or {}).get("fits") or ()})) or "this device"
    work = []
    for phase in ("prefill", "decode"):
        if f"{phase}_batch_size" in costs:
            work.append(f"{phase} batch {int(first[f'{phase}_batch_size'])} x {int(first[f'{phase}_context_len'])}")
    caption = ("At the efficiency measured here, " + "; ".join(work) + f", {first['dtype']}; the cheapest offer per "
               "accelerator on the price sheet. transfer: the efficiency measured on "
               f"{measured_on}, applied to this accelerator's datasheet peaks (an assumption, not a measurement of "
               "that accelerator). extrapolated: outside the measured FLOP range.")
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 150)
    title = "$ per 1M tokens at measured efficiency"
    if costs["transfer"].fillna(False).astype(bool).any():
        title += (f" (measured on {measured_on}; rows marked transfer are a what-if on accelerators that were "
                  "not measured)")
    out.print(table(title, [
        "model", "accelerator", "price", "$/1M prompt", "$/1M generated", "decode MFU", "decode regime", "basis"],
        rows, caption=caption))
    for note in job.cost_notes:
        if note.startswith("presets not priced"):
            click.echo(f"Larger {note}.")


COMMANDS = [run]
