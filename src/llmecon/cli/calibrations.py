"""`llmecon calibrations`: the published reference calibrations built in, and the user's calibration files."""

from __future__ import annotations

from pathlib import Path

import click

from llmecon.calibration.published import cross_hardware_check, write_shipped
from llmecon.calibration.reference import ENV_VAR, list_calibrations
from llmecon.cli._output import console, echo_json, frame_records, table
from llmecon.units import pct, si

DEFAULT_FILE = "calibration.json"   # what `llmecon calibrate` writes by default


@click.command("calibrations")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--sources", "with_sources", is_flag=True, help="Also list each fit's sources and point ids.")
@click.option("--cross-hardware", is_flag=True,
              help="Instead: how well a fit on one accelerator predicts another's published points, and each "
                   "source's points from the others'.")
@click.option("--markdown", is_flag=True, help="With --cross-hardware: print a Markdown table (as in the README).")
@click.option("--fit-published", metavar="FILE", type=click.Path(dir_okay=False),
              help=f"Instead: fit the published sheets (built-in, $LLMECON_PUBLISHED, --published-sheet) into FILE; "
                   f"set ${ENV_VAR}=FILE for estimates to use them.")
@click.option("--published-sheet", "published_sheets", multiple=True, metavar="PATH",
              help="Add a sheet of published measurements (CSV, the columns of the built-in one); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per fit (and per refused group).")
def calibrations(paths, with_sources, cross_hardware, markdown, fit_published, published_sheets, as_json) -> None:
    """List calibrations: the published references built in, and yours.

    The published ones are fitted on measurements others published (`costmodel/data/published.csv`), one per
    (engine, accelerator, dtype, phase); `llmecon estimate` uses them when given neither --mfu nor --calibration.
    PATHS are your calibration files, or folders searched for them [default: ./calibration.json if it exists].

    \b
    Examples:
      llmecon calibrations
      llmecon calibrations calibration.json results/ --sources
      llmecon calibrations --cross-hardware
      llmecon calibrations --fit-published mine.json --published-sheet my-measurements.csv
    """
    if fit_published:
        path = write_shipped(Path(fit_published), published_sheets)
        click.echo(f"wrote {path}; estimates use it with {ENV_VAR}={path}")
        return
    if cross_hardware:
        _cross_hardware(cross_hardware_check(published_sheets), as_json, markdown)
        return
    if not paths and Path(DEFAULT_FILE).is_file():
        paths = (DEFAULT_FILE,)
    rows = list_calibrations(paths)
    if as_json:
        echo_json(rows)
        return
    out = console()
    fitted = [r for r in rows if not r["refused"]]
    out.print(table("Calibrations", ["basis", "engine / file", "accelerator", "dtype", "phase", "points", "η_compute",
                                     "η_memory", "t0", "held-out (by shape)", "by model", "sources"],
                    [[r["basis"], r["name"], r["hardware"], r["dtype"], r["phase"], r["points"],
                      pct(r["eta_compute"]) if r["eta_compute"] else None,
                      pct(r["eta_memory"]) if r["eta_memory"] else None, si(r["t0_s"], "s"),
                      pct(r["heldout_median_rel_error"]),
                      pct(r["heldout_by_model_median_rel_error"]) if r["heldout_by_model_median_rel_error"] is not None
                      else None, len(r["sources"]) or None] for r in fitted],
                    caption="published: fitted on others' measurements (see --sources); measured: your runs. "
                            "Held-out: median relative error of a step predicted by a fit without it."))
    refused = [r for r in rows if r["refused"]]
    if refused:
        out.print(table("Not fitted", ["basis", "engine / file", "accelerator", "dtype", "phase", "points", "why"],
                        [[r["basis"], r["name"], r["hardware"], r["dtype"], r["phase"], r["points"], r["refused"]]
                         for r in refused]))
    if with_sources:
        for r in fitted:
            out.print(f"[bold]{r['name']} {r['hardware']} {r['dtype']} {r['phase']}[/bold]")
            for s in r["sources"]:
                out.print(f"  source: {s}")
            out.print(f"  points: {', '.join(r['point_ids'])}")


def _cross_hardware(frame, as_json: bool, markdown: bool) -> None:
    if as_json:
        echo_json(frame_records(frame))
        return
    head = ["phase", "check", "fitted on", "points", "predicts", "points", "median error", "max error"]
    rows = [[r.phase, r.check, f"{r.fitted_engine} {r.fitted_hardware} {r.fitted_dtype}", r.fitted_points,
             f"{r.target_engine} {r.target_hardware} {r.target_dtype}", r.target_points, pct(r.median_rel_error),
             pct(r.max_rel_error)] for r in frame.itertuples()]
    if markdown:
        click.echo("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for row in rows:
            click.echo("| " + " | ".join(str(c) for c in row) + " |")
        return
    console().print(table("Calibrate on one accelerator, predict another (published points)", head, rows,
                          caption="error = |predicted - published| / published step time; transfer: the fit's η, t0 "
                                  "and τ with the target's datasheet peaks"))


COMMAND = calibrations
