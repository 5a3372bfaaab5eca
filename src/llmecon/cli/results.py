"""`llmecon results list|show`: what is in a results folder, as one tidy table."""

from __future__ import annotations

from pathlib import Path

import click

from llmecon.cli._output import echo_json, frame_records, show, table, warn
from llmecon.errors import UserError
from llmecon.records.load import GATED, load_results
from llmecon.records.store import list_runs
from llmecon.units import binary_bytes, pct, si, spread
from llmecon.vocab import DEFAULT_OUT, GENERATE

# the table's default columns (csv and json get every column unless --columns says otherwise): the MFU and
# bandwidth use that physics bounds (executed FLOPs, counted bytes), never a convention's that counts work
# which did not run
_TABLE_COLUMNS = ("model", "phase", "dtype", "batch_size", "seq_len", "new_tokens", "status", "tokens_per_s",
                  "step_time_spread", *GATED, "reason", "warnings")
# generate rows add their latencies (seconds: median and 90th percentile of the time to first token and per output token)
_LATENCY_COLUMNS = ("ttft_s", "ttft_p90_s", "tpot_s", "tpot_p90_s")
_WHY = "reason / warnings"  # the table's last column: why a row is not valid, else what to be wary of
_UNBOUNDED_NOTE = ("* above 100 %: this convention counts work that did not run (the article's 2N includes the "
                   "embedding lookup, a gather, not a matmul); the executed convention is the bounded one")


@click.group("results")
def results() -> None:
    """Look at measured runs (written by `llmecon bench`)."""


@results.command("list")
@click.argument("directory", required=False, default=DEFAULT_OUT, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def list_cmd(directory: str, as_json: bool) -> None:
    """One line per run in DIRECTORY: id, date, device, models, rows ok/total.

    DIRECTORY defaults to llmecon-out/, where `llmecon bench` and `llmecon run` write (their runs/
    folder is searched too). An empty folder prints "no runs" and exits 0, as `results show` does.

    \b
    Examples:
      llmecon results list
      llmecon results list results/ --json
    """
    if _nothing_yet(directory):
        return
    runs = list_runs(directory)
    for run in runs:
        for problem in run["problems"]:
            warn(problem)
    if as_json:
        echo_json([{k: v for k, v in r.items() if k != "problems"} for r in runs])
        return
    if not runs:
        click.echo(f"no runs in {directory}", err=True)
        return
    rows = [[r["run_id"], (r["created_utc"] or "")[:19].replace("T", " "), r["device"] or "unknown",
             ", ".join(r["models"]) or "—", f"{r['ok']}/{r['total']}"] for r in runs]
    show(table(None, ["run", "created (UTC)", "device", "models", "ok/total"], rows))


def _nothing_yet(directory: str) -> bool:
    """The default folder before anything was measured: said, not an error (a folder the user names must exist)."""
    if directory != DEFAULT_OUT or Path(directory).exists():
        return False
    click.echo(f"no runs in {directory} yet: `llmecon run` or `llmecon bench` write them there", err=True)
    return True


def _cell(column: str, value):
    """A value as the table prints it: percentages for utilisations, SI for rates and times."""
    if value is None:
        return None
    if column == "step_time_spread":
        return spread(value)
    if "mfu" in column or "util" in column:
        return pct(value) + ("*" if value > 1 and column not in GATED else "")
    if column in ("scaling_efficiency", "rank_imbalance"):
        return pct(value)
    if column.endswith("_s") and not column.endswith("per_s"):
        return si(value, "s")
    if column.endswith("per_s"):
        unit = {"tokens_per_s": "tok/s", "bytes_per_s": "B/s"}.get(column, "FLOP/s" if "flops" in column else "B/s")
        return si(value, unit)
    if column.endswith("_bytes"):
        return binary_bytes(value)
    if isinstance(value, float) and value.is_integer() and "flops" not in column:
        return int(value)
    return value


@results.command("show")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--columns", help="Comma-separated column names to print (default: a readable subset for the table, "
                                "every column for csv and json).")
@click.option("--strict", is_flag=True, help="Fail on the first unreadable file instead of skipping it.")
def show_cmd(paths: tuple[str, ...], fmt: str, columns: str | None, strict: bool) -> None:
    """The records under PATHS (run folders or folders of runs) as one tidy table.

    PATHS default to llmecon-out/. Derived columns (tokens/s, MFU against the datasheet and the measured
    ceiling, bandwidth use) are computed now from the raw samples and the current hardware sheet.
    Unreadable files are reported on stderr and skipped. The table shows the MFU of the executed FLOPs
    (bounded by 1); another convention's, asked for with --columns, is marked * where it exceeds 100 %.

    \b
    Examples:
      llmecon results show
      llmecon results show results/20261129T225350Z-f460904a --format csv > run.csv
      llmecon results show results/ --format json --columns phase,batch_size,tokens_per_s,mfu_executed
    """
    if not paths and _nothing_yet(DEFAULT_OUT):
        if fmt == "json":
            echo_json([])
        return
    res = load_results(list(paths) or [DEFAULT_OUT], strict=strict)
    for problem in res.problems:
        warn(problem)
    frame = res.frame
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in frame.columns]
        if unknown:
            raise UserError(f"unknown column(s) {', '.join(unknown)}; known: {', '.join(frame.columns)}")
    elif fmt == "table":
        wanted = list(_TABLE_COLUMNS)
        if frame["phase"].eq(GENERATE).any():
            at = wanted.index("step_time_spread")
            wanted[at:at] = _LATENCY_COLUMNS
        if frame["world_size"].fillna(1).gt(1).any():  # beyond one device: how, on how many, and how well it scaled
            at = wanted.index("batch_size")
            wanted[at:at] = ["parallel", "world_size"]
            wanted.insert(wanted.index("tokens_per_s") + 1, "scaling_efficiency")
    else:
        wanted = list(frame.columns)
    frame = frame[wanted]
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
        return
    if fmt == "json":
        echo_json(frame_records(frame))
        return
    if not len(frame):
        click.echo(f"no runs in {', '.join(paths) or DEFAULT_OUT}", err=True)
        return
    records = frame_records(frame)
    if not columns:  # one column says why: the reason of an invalid row, else its warnings (as bench prints)
        wanted = [c for c in wanted if c not in ("reason", "warnings")] + [_WHY]
        for r in records:
            reason, warnings = r.pop("reason"), r.pop("warnings")
            r[_WHY] = reason or warnings
    rows = [[_cell(c, r[c]) for c in wanted] for r in records]
    marked = any(isinstance(v, str) and v.endswith("%*") for row in rows for v in row)
    caption = (f"{len(frame)} rows, {int(res.frame['valid'].sum())} valid"
               + ("; step_time_spread: the rounds' half-range over their median" if "step_time_spread" in wanted else "")
               + ("; ttft/tpot: a generate request's time to first token / per output token, median and p90 over "
                  "all its requests" if any(c in _LATENCY_COLUMNS for c in wanted) else "")
               + ("; mfu_<convention>: FLOPs counted in that convention (executed: every matmul eager attention "
                  "runs, the full T×T scores included; docs/measuring.md §12.3)" if any("mfu_" in c for c in wanted)
                  else "")
               + (f"\n{_UNBOUNDED_NOTE}" if marked else ""))
    show(table(None, wanted, rows, caption=caption))


COMMAND = results
