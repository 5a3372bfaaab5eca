"""Output helpers shared by the commands: strict JSON to stdout, rich tables that never crop a number."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Iterable, Sequence

import click

WIDE = 200  # columns of a page printed into a pipe or a log (rich would use 80 and crop)


def plain(value: Any) -> Any:
    """A value as strict JSON can hold it: NaN/inf -> None, numpy/pandas scalars -> Python, Paths -> text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "model_dump"):        # a pydantic document (a Calibration)
        return plain(value.model_dump(mode="json"))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and not isinstance(value, (str, int, float, bool)) and type(value).__name__ == "NAType":
        return None
    return value


def echo_json(obj: Any) -> None:
    """Print obj as strict JSON (no NaN/Infinity) to stdout."""
    click.echo(json.dumps(plain(obj), indent=2, allow_nan=False))


def frame_records(frame) -> list[dict]:
    """A DataFrame's rows as JSON-ready dicts (missing values None)."""
    return [] if frame is None or not len(frame) else frame.astype(object).where(frame.notna(), None).to_dict("records")


def console():
    """A rich console on stdout, wide when stdout is a pipe or a file (imported lazily: rich costs ~50 ms)."""
    from rich.console import Console

    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = max(out.width, WIDE)
    return out


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None):
    """A rich Table with numeric-looking columns right-aligned; None prints as —."""
    from rich.table import Table

    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    rows = [list(r) for r in rows]
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], (int, float)) or r[i] in ("", None, "—") for r in rows)
        t.add_column(name, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*["—" if v is None else (f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
                    for v in r])
    return t


def show(t, rows: Sequence[Sequence[Any]] | None = None, *, free_text_column: int | None = None) -> None:
    """Print a table without ever cropping a number: with ``rows``, every column is at least as wide as its
    widest cell, but ``free_text_column``, which wraps between words."""
    if rows is not None:
        for i, column in enumerate(t.columns):
            cells = [str(r[i]) for r in rows]
            words = max((len(w) for w in str(column.header).split()), default=1)
            if i == free_text_column:
                column.min_width = max([words] + [len(w) for c in cells for w in c.split()])
            else:
                column.min_width = max([words] + [len(c) for c in cells])
    console().print(t, crop=False)


def warn(message: str) -> None:
    click.echo(f"llmecon: warning: {message}", err=True)
