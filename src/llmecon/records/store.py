"""Run folders on disk: create a run, write its records, read them back (any schema, migrated), list runs.

Guarantees (docs/measuring.md):

- **Unique names.** A run id is the UTC time plus 8 random hex digits, and the folder is created with
  ``os.mkdir``, which fails rather than reuse a folder; on a collision a new id is drawn. Records inside a
  run are named by their config id.
- **Atomic writes** (``files.atomic_write_text``): a writer killed at any instant leaves the previous
  complete file or none, plus perhaps a ``*.tmp`` that readers skip. Rewriting a config id (``--resume``)
  replaces the old record the same way; the last write wins.
- **Strict JSON.** A non-finite float is written as null and its location listed in ``nonfinite_fields``.
- **No secrets** (``redact``), and every document is validated against ``schema.py`` before it is written:
  a malformed record is the caller's bug (ValueError), never a file.
- **Resume.** Final statuses (vocab.FINAL_STATUSES) are not retried by ``--resume``; error, timeout,
  interrupted and unreadable records are.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from llmecon._version import __version__
from llmecon.errors import UserError
from llmecon.files import atomic_write_text, dumps, is_leftover, read_json
from llmecon.formats import describe, parse
from llmecon.records.environment import environment
from llmecon.records.migrate import upgrade_record, upgrade_run
from llmecon.records.redact import redact
from llmecon.records.schema import SCHEMA_VERSION, Record, Run
from llmecon.vocab import DEFAULT_OUT, FINAL_STATUSES, GENERATE, RUNS_FOLDER


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def jsonable(obj: Any, path: str = "", nonfinite: list[str] | None = None) -> Any:
    """Plain JSON types: numpy scalars unwrapped, tuples to lists, NaN/inf -> None (location noted)."""
    nonfinite = [] if nonfinite is None else nonfinite
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, f"{path}.{k}" if path else str(k), nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(obj)]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars
        return jsonable(obj.tolist(), path, nonfinite)
    if isinstance(obj, float) and not math.isfinite(obj):
        nonfinite.append(f"{path}={obj}")
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)  # Path, torch.dtype, ...: their text is what a reader needs


def _checked(model, doc: dict, what: str):
    """Redact, sanitise and validate a document about to be written; ValueError if it is malformed."""
    nonfinite: list[str] = []
    doc = jsonable(redact(doc), "", nonfinite)
    if nonfinite:
        doc["nonfinite_fields"] = nonfinite
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ValueError(f"malformed {what}: {describe(exc)}") from None


def _new_run_id() -> str:
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"


def new_run(out_dir, meta: Mapping) -> Path:
    """Create ``<out_dir>/<run_id>/`` (and ``records/``), write ``run.json`` and return the folder.

    ``meta`` holds device, ceilings and config; environment is captured when absent. schema_version,
    run_id, created_utc and tool_version are set here."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create results folder {out}: {exc.strerror or exc}") from None
    for _ in range(100):
        run_id = _new_run_id()
        try:
            os.mkdir(out / run_id)
            break
        except FileExistsError:
            continue
    else:  # 100 collisions of 32 random bits: something else is wrong
        raise RuntimeError(f"could not create a unique run folder in {out}")
    run_dir = out / run_id
    (run_dir / "records").mkdir()
    doc = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "created_utc": utc_now(), "tool_version": __version__,
           "environment": environment(), **{k: v for k, v in meta.items() if k not in ("schema_version", "run_id")}}
    run = _checked(Run, doc, "run.json")
    atomic_write_text(run_dir / "run.json", dumps(run.model_dump(mode="json")))
    return run_dir


_CONFIG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=,@-]{0,199}$")


def make_config_id(config: Mapping, name: str | None = None) -> str:
    """A readable, deterministic, file-name-safe id for one configuration, such as
    ``prefill-llama-3-8b-bf16-b8-s2048-3f9a1c2e``: the hash covers the whole config, so two configs that
    differ anywhere get different ids, and the same config always the same id. ``name`` is the model's
    display name (default: the name of the model as given)."""
    digest = hashlib.sha1(json.dumps(jsonable(config), sort_keys=True).encode()).hexdigest()[:8]
    label = name or str(config.get("model", "model"))
    model = re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-.")[:40]
    parts = [config.get("phase"), model or "model", config.get("dtype")]
    parts += [f"b{config['batch_size']}" if config.get("batch_size") is not None else None]
    parts += [f"s{config['seq_len']}" if config.get("seq_len") is not None else None]
    if config.get("phase") in ("decode", GENERATE) and config.get("new_tokens") is not None:
        parts.append(f"n{config['new_tokens']}")
    return "-".join(str(p) for p in parts if p not in (None, "")) + f"-{digest}"


def write_record(run_dir, record: Mapping) -> Path:
    """Validate one configuration's record and write it to ``records/<config_id>.json`` atomically.

    schema_version is set; run_id (the folder's name) and created_utc are filled when absent. ValueError
    for a malformed record (a caller's bug)."""
    run_dir = Path(run_dir)
    doc = {"schema_version": SCHEMA_VERSION, "run_id": run_dir.name, "created_utc": utc_now(),
           **{k: v for k, v in record.items() if k != "schema_version"}}
    rec = _checked(Record, doc, "record")
    path = run_dir / "records" / f"{rec.config_id}.json"
    atomic_write_text(path, dumps(rec.model_dump(mode="json")))
    return path


# ------------------------------------------------------------------------------------------------ reading

def read_run(path) -> Run:
    """A run.json of any known schema, migrated and validated; UserError naming the file otherwise."""
    return parse(Run, _read(path, upgrade_run), str(path))


def read_record(path) -> Record:
    """A record of any known schema, migrated and validated; UserError naming the file otherwise."""
    return parse(Record, _read(path, upgrade_record), str(path))


def _read(path, upgrade) -> Any:
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable JSON ({exc})") from None
    try:
        return upgrade(doc)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def open_run(run_dir) -> Run:
    """The run.json of an existing run folder (for --resume); UserError if it is not one."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no run.json)")
    return read_run(path)


def record_files(run_dir: Path) -> list[Path]:
    """records/*.json, without hidden files and the *.tmp leftovers of interrupted writes."""
    folder = Path(run_dir) / "records"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".json" and not is_leftover(p) and p.is_file())


def finished_config_ids(run_dir, *, any_status: bool = False) -> set[str]:
    """Config ids whose record has a final status (``any_status``: any readable record). Unreadable records are
    not final: ``--resume`` runs their configuration again and overwrites the record."""
    done = set()
    for path in record_files(Path(run_dir)):
        try:
            rec = read_record(path)
        except UserError:
            continue
        if any_status or rec.status in FINAL_STATUSES:
            done.add(rec.config_id)
    return done


def _is_run(p: Path) -> bool:
    return (p / "run.json").is_file() or (p / "records").is_dir()


def find_runs(path) -> list[Path]:
    """Run folders at ``path``: the folder itself, its subfolders that are runs, and those of its ``runs/``
    folder (where ``llmecon bench`` and ``llmecon run`` put them), sorted by name (= time)."""
    path = Path(path)
    if _is_run(path):
        return [path]
    found = [p for p in path.iterdir() if p.is_dir() and _is_run(p)]
    if (path / RUNS_FOLDER).is_dir():
        found += [p for p in (path / RUNS_FOLDER).iterdir() if p.is_dir() and _is_run(p)]
    return sorted(found, key=lambda p: (p.name, str(p)))


def as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def existing_folders(paths: Iterable) -> list[Path]:
    """The given paths as folders (a run.json stands for its folder); UserError for one that is missing."""
    out = []
    for target in as_paths(paths):
        if target.is_file() and target.name == "run.json":
            target = target.parent
        if not target.exists():
            raise UserError(f"no such results folder: {target}")
        if not target.is_dir():
            raise UserError(f"not a results folder: {target}")
        out.append(target)
    if not out:
        raise UserError("no results folder given")
    return out


def list_runs(out_dir=DEFAULT_OUT) -> list[dict]:
    """One summary per run folder under out_dir (as `llmecon results list --json`): {run_id, created_utc,
    device, hardware_id, models, ok, total, problems, path}.

    >>> [r["models"] for r in list_runs("results")]                    # doctest: +SKIP
    [['tiny']]
    """
    out = []
    for run_dir in find_runs(existing_folders([out_dir])[0]):
        problems: list[str] = []
        try:
            run = read_run(run_dir / "run.json")
            run_id, created, device, hw = run.run_id, run.created_utc, run.device.name, run.device.hardware_id
        except UserError as exc:
            problems.append(str(exc))
            run_id, created, device, hw = run_dir.name, None, None, None
        models, ok, total = [], 0, 0
        for path in record_files(run_dir):
            total += 1
            try:
                rec = read_record(path)
            except UserError as exc:
                problems.append(str(exc))
                continue
            ok += rec.status == "ok"
            if rec.model.name not in models:
                models.append(rec.model.name)
        out.append({"run_id": run_id, "created_utc": created, "device": device, "hardware_id": hw,
                    "models": models, "ok": ok, "total": total, "problems": problems, "path": str(run_dir)})
    return out
