"""A model as a user names it: a preset of ``data/models.csv``, a config.json, a local model folder holding
one, or a config dict -> its `ModelShape` (architecture.py). Never runs remote code and never downloads: a
hub id that is not a preset is refused.
"""

from __future__ import annotations

import csv
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from llmecon.costmodel.architecture import ModelShape, shape_from_config
from llmecon.errors import UserError

_META_COLUMNS = ("name", "model_type", "training_tokens", "source", "note")


def _parse_cell(text: str, where: str) -> Any:
    text = text.strip()
    if text.lower() == "null":
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not a JSON object ({exc.msg})") from None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@lru_cache(maxsize=1)
def _presets() -> dict[str, dict[str, Any]]:
    """Rows of data/models.csv: {name: {"config": {...}, "training_tokens", "source", "note"}}."""
    text = resources.files("llmecon.costmodel").joinpath("data/models.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    presets: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows, start=2):
        name = row["name"].strip()
        where = f"models.csv row {i} ({name})"
        cfg: dict[str, Any] = {"model_type": row["model_type"].strip()}
        for key, value in row.items():
            if key in _META_COLUMNS or value is None or not value.strip():
                continue
            cfg[key] = _parse_cell(value, f"{where}, field {key}")
        tokens = row.get("training_tokens", "").strip()
        presets[name] = {"config": cfg, "training_tokens": float(tokens) if tokens else None,
                         "source": row.get("source", "").strip(), "note": row.get("note", "").strip()}
    return presets


def list_presets() -> list[str]:
    """Names of the presets in data/models.csv, in file order."""
    return list(_presets())


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                        "a config.json is UTF-8 JSON") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: a config must be a JSON object, got {type(cfg).__name__}")
    return cfg


def config_name(cfg: Mapping[str, Any], path: Path | None) -> str:
    """What to call a model given as a config: its ``_name_or_path`` (what ``save_pretrained`` records, such
    as "meta-llama/Llama-3.2-1B"), else the name of the folder holding its config.json, else its file name
    or model_type. (``bench --name`` overrides it.)"""
    given = cfg.get("_name_or_path") or cfg.get("name")
    if isinstance(given, str) and given.strip():
        return given.strip()
    if path is not None:
        folder = path.resolve().parent.name
        return folder if path.name == "config.json" and folder else path.name
    return str(cfg.get("model_type") or "config")


def load_model_shape(spec: str | os.PathLike | Mapping[str, Any]) -> ModelShape:
    """A preset name, a path to a config.json, a local model folder holding config.json, or a dict.

    Never runs remote code and never downloads: a hub id that is not a preset is an error.
    """
    if isinstance(spec, ModelShape):
        return spec
    if isinstance(spec, Mapping):
        cfg = dict(spec)
        return shape_from_config(cfg, name=config_name(cfg, None))
    text = os.fspath(spec)
    presets = _presets()
    key = text.strip().lower()
    if key in presets:
        p = presets[key]
        return shape_from_config(p["config"], name=key, training_tokens=p["training_tokens"],
                                 source=p["source"], note=p["note"])
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{path}: folder has no config.json")
        path = path / "config.json"
    if path.is_file():
        cfg = _read_config_file(path)
        return shape_from_config(cfg, name=config_name(cfg, path))
    raise UserError(f"unknown model {text!r}: not a preset ({', '.join(presets)}) nor a config.json or "
                    f"model folder")
