"""Reading and writing files: the one atomic write and the one strict JSON read.

A file written here is either the complete new text or the previous file (or nothing): the text goes to a
temporary file in the same folder, is fsync'ed and `os.replace`'d over the name, and the folder is fsync'ed
so that the rename survives a power cut. Readers skip the ``.<name>.<random>.tmp`` a killed writer may leave.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from llmecon.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (parents created); UserError naming the file if it cannot be."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable where the platform allows it (not every one does)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``, strictly (NaN and Infinity refused). OSError or ValueError (with the reason)
    when it cannot be read; callers turn those into a problem line or a UserError naming the file."""
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(text, parse_constant=_refuse_constant)


def load_json(path: str | os.PathLike, what: str) -> Any:
    """`read_json`, with a file that cannot be read or parsed turned into one UserError naming ``what`` and the
    file."""
    try:
        return read_json(path)
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def dumps(obj: Any, indent: int = 1) -> str:
    """Strict JSON text (a NaN is a bug here: callers replace non-finite numbers first), newline-terminated."""
    return json.dumps(obj, indent=indent, allow_nan=False) + "\n"


def is_leftover(path: Path) -> bool:
    """A hidden file or the temporary file of an interrupted write: never a result."""
    return path.name.startswith(".") or path.suffix == ".tmp"
