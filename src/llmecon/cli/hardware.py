"""`llmecon hardware`: list the accelerator sheet (dense peaks, memory, bandwidth, TDP)."""

from __future__ import annotations

import click

from llmecon.cli._common import echo_json, print_wide_table, table
from llmecon.errors import UserError

_SHEET_HELP = "Add a hardware sheet (CSV, same columns as the built-in one); repeatable. Also $LLMECON_HARDWARE."


def _num(value: float | None, digits: int) -> str:
    """'1,307.4', '989', '0.864': thousands separators, at most `digits` decimals, no trailing zeros."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


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
    from llmecon.costmodel.hardware import DTYPES, get_accelerator, load_hardware

    accelerators = list(load_hardware(sheets).values())
    if hw_id is not None:
        accelerators = [get_accelerator(hw_id, sheets)]
    if vendor is not None:
        vendors = sorted({a.vendor for a in load_hardware(sheets).values()}, key=str.lower)
        if vendor.lower() not in {v.lower() for v in vendors}:
            raise UserError(f"unknown vendor {vendor!r}; known: {', '.join(vendors)}")
        accelerators = [a for a in accelerators if a.vendor.lower() == vendor.lower()]
    dtypes = DTYPES
    if dtype is not None:
        if dtype not in DTYPES:
            raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
        accelerators = [a for a in accelerators if a.peak(dtype) is not None]
        dtypes = (dtype,)
    if as_json:
        echo_json([a.to_dict() for a in accelerators])
        return
    columns = ["id", "name"] + [f"{d} {'TOP/s' if d == 'int8' else 'TFLOP/s'}" for d in dtypes]
    columns += ["memory GB", "bandwidth TB/s", "TDP W"]
    rows = []
    for a in accelerators:
        rows.append(
            [a.id, a.name + (" ⚠" if a.disputed else "")]
            + [_num(a.peak(d) / 1e12, 1) if a.peak(d) else "—" for d in dtypes]
            + [_num(a.memory_bytes / 1e9, 1), _num(a.memory_bytes_per_s / 1e12, 3), _num(a.tdp_w, 0)]
        )
    caption = "Dense peaks (no sparsity); int8 in TOP/s. Sources and dates: --json."
    if any(a.disputed for a in accelerators):
        caption += " ⚠ = sources disagree (see the notes in --json)."
    if not rows:
        caption = "No accelerator matches these filters."
    t = table("Accelerators", columns, rows, caption=caption)
    for column in t.columns[2:]:
        column.justify = "right"
    print_wide_table(t, rows)


COMMANDS = [hardware_command]
