"""`llmecon prices`: list the price sheet (per instance and per accelerator-hour)."""

from __future__ import annotations

import click

from llmecon.cli._output import echo_json, show, table
from llmecon.costmodel.prices import select
from llmecon.units import usd


@click.command("prices")
@click.option("--accelerator", metavar="ID", help="Only offers for this accelerator id, e.g. h100-sxm.")
@click.option("--provider", metavar="NAME", help="Only this provider, e.g. aws, gcp, lambda.")
@click.option("--term", metavar="TERM", help="Only this term: on_demand, 1_year (1yr), 3_year (3yr), spot.")
@click.option("--id", "price_id", metavar="ID", help="Show one price, e.g. aws-p4d.24xlarge-1yr-2023.")
@click.option("--price-sheet", "price_sheets", multiple=True, metavar="PATH",
              help="Add a price sheet (CSV, same columns as the built-in one); repeatable. Also $LLMECON_PRICES.")
@click.option("--hardware-sheet", "hardware_sheets", multiple=True, metavar="PATH",
              help="Add a hardware sheet that your price sheet's accelerator ids refer to; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (USD per hour, per instance and per accelerator).")
def prices_command(accelerator, provider, term, price_id, price_sheets, hardware_sheets, as_json):
    """List cloud prices: USD per instance-hour and per accelerator-hour.

    \b
    Terms: on_demand, 1_year and 3_year (reserved/committed, effective hourly), spot.
    Examples:
      llmecon prices --accelerator h100-sxm --term on_demand
      llmecon prices --provider gcp --json
      llmecon prices --id aws-p4d.24xlarge-1yr-2023
      llmecon prices --price-sheet my-prices.csv --hardware-sheet my-gpus.csv
    """
    prices = select(accelerator, provider, term, price_id, price_sheets, hardware_paths=hardware_sheets)
    if as_json:
        echo_json([p.to_dict() for p in prices])
        return
    show_acc = accelerator is None
    columns = ["id", "instance"] + (["accelerator"] if show_acc else []) + ["count", "term", "USD/hour", "USD/accel-hour", "date"]
    rows = [
        [p.id, p.instance] + ([p.accelerator_id] if show_acc else [])
        + [p.count, p.term, usd(p.usd_per_hour), usd(p.usd_per_accelerator_hour), p.date]
        for p in prices
    ]
    caption = "USD/hour is per instance; USD/accel-hour = USD/hour / count. Region, source, notes: --json."
    if not rows:
        caption = "No price matches these filters."
    t = table("Prices", columns, rows, caption=caption)
    for column in t.columns[-3:-1]:
        column.justify = "right"
    show(t, rows, free_text_column=1)


COMMAND = prices_command
