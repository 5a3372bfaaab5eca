"""`llmecon report`: one self-contained HTML page of figures and tables from bench runs."""

from __future__ import annotations

import click

from llmecon.api import report as write_report
from llmecon.vocab import DEFAULT_PRICE_TERM


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="A calibration file (llmecon calibrate): adds measured-vs-predicted, costs and the article.")
@click.option("-o", "--output", "out_dir", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives index.html.")
@click.option("--term", default=DEFAULT_PRICE_TERM, show_default=True,
              help="Price term of the offers priced: on_demand, 1yr, 3yr or spot.")
@click.option("--title", default=None, help="Page title [default: the models and devices measured].")
@click.option("--tpot-slo", metavar="T", help="The serving section's time-per-output-token target, e.g. 50ms.")
def report(runs, calibration, out_dir, term, title, tpot_slo) -> None:
    """Write OUTPUT/index.html: figures and tables about measured runs.

    Utilization against batch size, a roofline, measured against predicted step time, $ per 1M tokens
    across the price sheet, a serving plan (cost against time per output token, with --tpot-slo drawn), and
    the article against measured efficiency. RUNS are run folders or folders
    of runs written by `llmecon bench`. Figures are inlined (SVG), so the page works offline; a figure
    that cannot be drawn is replaced by a sentence saying why.

    \b
    Example:
      llmecon bench --model tiny --batch-size 1,4 --seq-len 64,256
      llmecon calibrate llmecon-out -o calibration.json
      llmecon report llmecon-out --calibration calibration.json -o report/
    """
    click.echo(f"wrote {write_report(runs, out_dir, calibration=calibration, term=term, title=title, tpot_slo=tpot_slo)}")


COMMAND = report
