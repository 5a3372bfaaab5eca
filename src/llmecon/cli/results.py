"""`llmecon results list|show`: what is in a results folder, as one tidy table."""

from __future__ import annotations

import click

from llmecon.cli._common import console, echo_json, table
from llmecon.errors import UserError

# the table's default columns (csv and json get every column unless --columns says otherwise)
_TABLE_COLUMNS = ("model", "phase", "dtype", "batch_size", "seq_len", "new_tokens", "status", "tokens_per_s")


@click.group("results")
def results() -> None:
    """Look at measured runs (written by `llmecon bench`)."""


@results.command("list")
@click.argument("directory", required=False, default="results", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def list_cmd(directory: str, as_json: bool) -> None:
    """One line per run in DIRECTORY (default: results/): id, date, device, models, rows ok/total.

    \b
    Example:
      llmecon results list results/
    """
    from llmecon.results import list_runs

    runs = list_runs(directory)
    for run in runs:
        for problem in run["problems"]:
            click.echo(f"llmecon: warning: {problem}", err=True)
    if as_json:
        echo_json([{k: v for k, v in r.items() if k != "problems"} for r in runs])
        return
    if not runs:
        click.echo(f"no runs in {directory}")
        return
    rows = [
        [r["run_id"], (r["created_utc"] or "")[:19].replace("T", " "), r["device"] or "unknown",
         ", ".join(r["models"]) or "—", f"{r['ok']}/{r['total']}"]
        for r in runs
    ]  # fmt: skip
    _wide_console().print(table(None, ["run", "created (UTC)", "device", "models", "ok/total"], rows))


def _wide_console():
    """The shared console; printing to a file or a pipe, tables keep their natural width."""
    out = console()
    if not out.is_terminal:
        out.width = 100_000
    return out


def _cell(column: str, value):
    """A value as the table prints it: percentages for utilisations, SI for rates and times."""
    from llmecon.units import binary_bytes, pct, si

    if value is None:
        return None
    if "mfu" in column or "util" in column:
        return pct(value) if abs(value) >= 1e-3 else f"{100 * value:.2g}%"  # 0.0092%, not 0.0%
    if column.endswith("_s") and not column.endswith("per_s"):
        return si(value, "s")
    if column.endswith("per_s"):
        unit = {"tokens_per_s": "tok/s", "bytes_per_s": "B/s"}.get(column, "FLOP/s" if "flops" in column else "B/s")
        return si(value, unit)
    if column.endswith("_bytes"):
        return binary_bytes(value)
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and "flops" not in column:
        return int(value)
    return value


@results.command("show")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--columns", help="Comma-separated column names to print (default: a readable subset for "
              "the table, every column for csv and json).")  # fmt: skip
@click.option("--strict", is_flag=True, help="Fail on the first unreadable file instead of skipping it.")
def show_cmd(paths: tuple[str, ...], fmt: str, columns: str | None, strict: bool) -> None:
    """The records under PATHS (run folders or folders of runs) as one tidy table.

    Derived columns (tokens/s, MFU against the datasheet and the measured ceiling, bandwidth use)
    are computed now from the raw samples and the current hardware sheet. Unreadable files are
    reported on stderr and skipped.

    \b
    Examples:
      llmecon results show results/
      llmecon results show results/20260101T120000Z-1a2b3c4d --format csv > run.csv
      llmecon results show results/ --format json --columns phase,batch_size,tokens_per_s,mfu_executed
    """
    from llmecon.results import load_results

    frame, problems = load_results(list(paths), strict=strict)
    for problem in problems:
        click.echo(f"llmecon: warning: {problem}", err=True)
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in frame.columns]
        if unknown:
            raise UserError(f"unknown column(s) {', '.join(unknown)}; known: {', '.join(frame.columns)}")
    elif fmt == "table":
        wanted = [*_TABLE_COLUMNS, *[c for c in frame.columns if "mfu" in c]]
    else:
        wanted = list(frame.columns)
    n_valid = int(frame["valid"].sum())
    frame = frame[wanted]
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
        return
    plain = frame.astype(object).where(frame.notna(), None)  # pd.NA / NaN -> None
    if fmt == "json":
        echo_json(plain.to_dict("records"))
    else:
        rows = [[_cell(c, v) for c, v in zip(wanted, r)] for r in plain.itertuples(index=False)]
        _wide_console().print(table(None, wanted, rows, caption=f"{len(frame)} rows, {n_valid} valid"))


COMMANDS = [results]
