"""`llmecon report`: one self-contained HTML page of figures and tables from bench runs."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="A calibration file (llmecon calibrate): adds measured-vs-predicted, costs and the article.")
@click.option("-o", "--output", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives index.html.")
@click.option("--title", default=None, help="Page title [default: the models and devices measured].")
def report(runs, calibration, out_dir, title) -> None:
    """Write OUTPUT/index.html: utilization against batch size, a roofline, measured against predicted
    step time, $ per 1M tokens across the price sheet, and the article against measured efficiency.

    RUNS are run folders or folders of runs written by `llmecon bench`. Figures are inlined (SVG), so
    the page works offline; a figure that cannot be drawn is replaced by a sentence saying why.

    \b
    Example:
      llmecon bench --model tiny --out results/
      llmecon calibrate results/ -o calibration.json
      llmecon report results/ --calibration calibration.json -o report/
    """
    from llmecon.report.html import build_report

    path = build_report(runs, out_dir, calibration=calibration, title=title)
    click.echo(f"wrote {path}")


COMMANDS = [report]
