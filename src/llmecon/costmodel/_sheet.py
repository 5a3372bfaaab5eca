"""Reading the CSV data sheets (hardware, prices): strict, all-or-nothing, errors name file, line, field.

Shared by `hardware` and `prices`; not part of the public API.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from llmecon.errors import UserError

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
UNKNOWN_ACCELERATOR_HINT = "not in the hardware sheets; add it with --hardware-sheet"
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def where(path: Path | str, line: int | None, field: str | None = None) -> str:
    """'sheet.csv: line 7, field 'value'' -- the prefix of every sheet error."""
    out = str(path)
    if line is not None:
        out += f": line {line}"
    if field is not None:
        out += f", field '{field}'"
    return out


def sheet_paths(builtin: Path, extra_paths: Iterable, env_var: str) -> tuple[Path, ...]:
    """Built-in sheet, then the paths in $env_var (os.pathsep-separated), then extra_paths; deduplicated."""
    raw: list = [builtin]
    env = os.environ.get(env_var, "")
    raw += [p for p in env.split(os.pathsep) if p.strip()]
    if isinstance(extra_paths, (str, os.PathLike)):
        extra_paths = [extra_paths]
    raw += list(extra_paths or ())
    out: list[Path] = []
    for p in raw:
        path = Path(p).expanduser()
        if not path.exists():
            raise UserError(f"{path}: sheet not found")
        if not path.is_file():
            raise UserError(f"{path}: not a file (give the path of a .csv sheet)")
        path = path.resolve()
        if path not in out:
            out.append(path)
    return tuple(out)


def cache_key(paths: Sequence[Path]) -> tuple:
    """(path, mtime, size) for each sheet, so a cached load is redone when a sheet changes."""
    key = []
    for p in paths:
        st = p.stat()
        key.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(key)


def read_rows(path: Path, columns: Sequence[str], optional: Sequence[str] = ()) -> list[tuple[int, dict[str, str]]]:
    """[(line number, {column: stripped cell})] for every non-blank data row of a CSV sheet.

    The header must hold every column in `columns` (any order) and nothing else, except `optional` ones.
    UserError for: bad encoding, an empty file, a missing/unknown/repeated column, a row with the wrong
    number of cells, a file with a header but no rows.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{where(path, line)}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the sheet as UTF-8 CSV"
        ) from None
    if not text.strip():
        raise UserError(f"{path}: empty sheet (expected a header line: {','.join(columns)})")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        while not any(c.strip() for c in header):
            header = next(reader)
    except StopIteration:
        raise UserError(f"{path}: empty sheet (expected a header line: {','.join(columns)})") from None
    except csv.Error as exc:
        raise UserError(f"{where(path, reader.line_num)}: not a readable CSV line ({exc})") from None
    header_line = reader.line_num
    names = [h.strip() for h in header]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"{where(path, header_line, name)}: column appears twice in the header")
    for name in columns:
        if name not in names:
            raise UserError(
                f"{where(path, header_line, name)}: missing column (the header must have: {', '.join(columns)})"
            )
    for name in names:
        if name not in columns and name not in optional:
            raise UserError(
                f"{where(path, header_line, name or '(blank)')}: unknown column "
                f"(allowed: {', '.join(list(columns) + list(optional))})"
            )
    rows: list[tuple[int, dict[str, str]]] = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UserError(f"{where(path, reader.line_num)}: not a readable CSV line ({exc})") from None
        if not any(c.strip() for c in cells):
            continue
        line = reader.line_num
        if len(cells) != len(names):
            raise UserError(
                f"{where(path, line, '(row)')}: {len(cells)} cells, but the header has {len(names)} columns"
            )
        rows.append((line, {n: c.strip() for n, c in zip(names, cells)}))
    if not rows:
        raise UserError(f"{path}: the sheet has a header but no rows")
    return rows


def required(path: Path, line: int, row: dict[str, str], field: str) -> str:
    value = row[field]
    if not value:
        raise UserError(f"{where(path, line, field)}: empty; a value is required")
    return value


def positive_number(path: Path, line: int, field: str, text: str) -> float:
    """A finite number > 0 from a cell, else UserError naming file, line and field."""
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where(path, line, field)}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where(path, line, field)}: {text!r} is not a finite number")
    if value <= 0:
        raise UserError(f"{where(path, line, field)}: must be > 0, got {text}")
    return value


def one_of(path: Path, line: int, field: str, text: str, known: Iterable[str], what: str, hint: str = "") -> str:
    """``text`` when it is one of ``known``; else UserError naming file, line and field, the unknown ``what``
    (with ``hint``, in parentheses) and the known values."""
    known = tuple(known)
    if text not in known:
        extra = f" ({hint})" if hint else ""
        raise UserError(f"{where(path, line, field)}: unknown {what} {text!r}{extra}; known: {', '.join(known)}")
    return text


def whole_number(path: Path, line: int, field: str, text: str) -> int:
    """A count >= 1 written as a whole number; UserError naming file, line and field otherwise."""
    try:
        n = int(text)
    except ValueError:
        raise UserError(f"{where(path, line, field)}: {text!r} is not a whole number") from None
    if n < 1:
        raise UserError(f"{where(path, line, field)}: must be >= 1, got {n}")
    return n


def slug(path: Path, line: int, field: str, text: str) -> str:
    if not SLUG.match(text):
        raise UserError(
            f"{where(path, line, field)}: {text!r} is not a lowercase slug (letters, digits, '.', '_', '-')"
        )
    return text


def date(path: Path, line: int, field: str, text: str) -> str:
    """An ISO date: YYYY-MM-DD, or YYYY-MM / YYYY when the source is no more precise."""
    m = _DATE.match(text)
    ok = bool(m)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
        try:
            _dt.date(y, mo, d)
        except ValueError:
            ok = False
    if not ok:
        raise UserError(f"{where(path, line, field)}: {text!r} is not a date (YYYY-MM-DD, YYYY-MM or YYYY)")
    return text
