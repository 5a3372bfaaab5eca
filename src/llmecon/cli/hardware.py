"""`llmecon hardware`: list the accelerator sheet (dense peaks, memory, bandwidth, TDP)."""

from __future__ import annotations

import click

from llmecon.cli._output import echo_json, show, table
from llmecon.costmodel.hardware import select
from llmecon.units import number
from llmecon.vocab import DTYPES

_SHEET_HELP = "Add a hardware sheet (CSV, same columns as the built-in one); repeatable. Also $LLMECON_HARDWARE."


@click.command("hardware")
@click.option("--id", "hw_id", metavar="ID", help="Show one accelerator, e.g. h100-sxm.")
@click.option("--vendor", metavar="NAME", help="Only this vendor (nvidia, amd, google).")
@click.option("--dtype", metavar="DTYPE", help="Only accelerators with a dense peak for this dtype, and only its column.")
@click.option("--hardware-sheet", "sheets", multiple=True, metavar="PATH", help=_SHEET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (SI units, every fact with its source).")
def hardware_command(hw_id, vendor, dtype, sheets, as_json):
    """List accelerators: dense peak per dtype, memory, bandwidth, TDP.

    \b
    Peaks are dense (no 2:4 sparsity); every figure has a source and a date (see --json).
    Examples:
      llmecon hardware
      llmecon hardware --vendor nvidia --dtype bf16
      llmecon hardware --id a100-sxm4-40gb --json
      llmecon hardware --hardware-sheet my-gpus.csv
    """
    accelerators = select(hw_id, vendor, dtype, sheets)
    dtypes = (dtype,) if dtype else DTYPES
    if as_json:
        echo_json([a.to_dict() for a in accelerators])
        return
    columns = ["id", "name"] + [f"{d} {'TOP/s' if d == 'int8' else 'TFLOP/s'}" for d in dtypes]
    columns += ["memory GB", "bandwidth TB/s", "TDP W"]
    rows = []
    for a in accelerators:
        rows.append(
            [a.id, a.name + (" ⚠" if a.disputed else "")]
            + [number(a.peak(d) / 1e12) if a.peak(d) else "—" for d in dtypes]
            + [number(a.memory_bytes / 1e9), number(a.memory_bytes_per_s / 1e12), number(a.tdp_w)]
        )
    caption = "Dense peaks (no sparsity); int8 in TOP/s. Sources and dates: --json."
    if any(a.disputed for a in accelerators):
        caption += " ⚠ = sources disagree (see the notes in --json)."
    if not rows:
        caption = "No accelerator matches these filters."
    t = table("Accelerators", columns, rows, caption=caption)
    for column in t.columns[2:]:
        column.justify = "right"
    show(t, rows, free_text_column=1)


COMMAND = hardware_command
