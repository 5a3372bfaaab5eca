"""Output helpers shared by the commands: JSON to stdout, rich tables to a console."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Iterable, Sequence

import click


def _clean(value: Any) -> Any:
    """Make a value strict-JSON-safe: NaN/inf become None, numpy/pandas scalars become Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def echo_json(obj: Any) -> None:
    """Print obj as strict JSON (no NaN/Infinity) to stdout."""
    click.echo(json.dumps(_clean(obj), indent=2, allow_nan=False))


def console():
    """A rich console on stdout (imported lazily: rich costs ~50 ms)."""
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None):
    """A rich Table with numeric-looking columns right-aligned."""
    from rich.table import Table

    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    rows = [list(r) for r in rows]
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], (int, float)) or r[i] in ("", None, "—") for r in rows)
        t.add_column(name, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*["—" if v is None else (f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)) for v in r])
    return t


def print_wide_table(t, rows) -> None:
    """Print a table without ever cropping a number: every column but the second (free text, which wraps
    between words) is at least as wide as its widest cell; when stdout is not a terminal (a pipe, a file),
    use a wide page rather than rich's default 80 columns."""
    import os

    for i, column in enumerate(t.columns):
        words = max((len(w) for w in str(column.header).split()), default=1)
        if i == 1:  # free text: wrap between words, but never inside one
            column.min_width = max([words] + [len(w) for r in rows for w in str(r[i]).split()])
        else:
            column.min_width = max([words] + [len(str(r[i])) for r in rows])
    con = console()
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con.width = max(con.width, 200)
    con.print(t, crop=False)
