"""The calibration file: write it atomically, read it back validated.

Layout (JSON, ``schema_version`` 1)::

    {schema_version, kind: "llmecon-calibration", created_utc, tool_version, flop_convention, model,
     max_heldout_error,
     provenance: {sources, run_ids, device_names, environments: {run_id: {python, torch, ...}}},
     fits: [{hardware, hardware_id, device_names, dtype, phase, run_ids, n_rows, n_shapes, terms,
             eta_compute, eta_memory, t0_s, peak_flops_per_s, peak_flops_source ("datasheet" |
             "measured_ceiling"), peak_bytes_per_s, peak_bytes_source, regime_boundaries, heldout:
             {method, median_rel_error, max_rel_error, n_folds}, fit_rel_error, range, models, forced,
             warnings}],
     refused: [{hardware, dtype, phase, n_rows, n_shapes, refused: reason}]}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from llmecon.calibrate.model import StepModel
from llmecon.costmodel.flops import CONVENTIONS
from llmecon.errors import UserError

SCHEMA_VERSION = 1
PHASES = ("prefill", "decode", "train")
_SOURCES = ("datasheet", "measured_ceiling")


def save_calibration(calib: dict, path: str | os.PathLike) -> Path:
    """Write the calibration as strict JSON (atomic: temp file in the same folder, then rename)."""
    validate_calibration(calib, "calibration")
    path = Path(path)
    text = json.dumps(calib, indent=2, allow_nan=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"cannot write calibration {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes it 0600; a calibration is meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write calibration {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_calibration(path: str | os.PathLike) -> dict:
    """Read and validate a calibration file; UserError naming the file and the field otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read calibration {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"non-JSON constant {c}")))
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    validate_calibration(doc, str(path))
    return doc


def _num(where: str, value: Any, *, allow_none=False, allow_zero=False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (
        value > 0 or (allow_zero and value == 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise UserError(f"{where}: must be a finite number {bound}{' or null' if allow_none else ''}, got {value!r}")


def validate_calibration(doc: Any, source: str) -> None:
    if not isinstance(doc, dict):
        raise UserError(f"{source}: a calibration is a JSON object")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{source}: schema_version: expected {SCHEMA_VERSION}, got {version!r}"
                        + (" (written by a newer llmecon)"
                           if isinstance(version, int) and version > SCHEMA_VERSION else ""))
    if doc.get("kind") != "llmecon-calibration":
        raise UserError(f"{source}: kind: expected 'llmecon-calibration', got {doc.get('kind')!r}")
    if doc.get("flop_convention") not in CONVENTIONS:
        raise UserError(f"{source}: flop_convention: expected one of {', '.join(CONVENTIONS)}, "
                        f"got {doc.get('flop_convention')!r}")
    if not isinstance(doc.get("provenance"), dict):
        raise UserError(f"{source}: provenance: missing")
    fits = doc.get("fits")
    if not isinstance(fits, list) or not fits:
        raise UserError(f"{source}: fits: expected a non-empty list")
    seen = set()
    for i, fit in enumerate(fits):
        where = f"{source}: fits[{i}]"
        if not isinstance(fit, dict):
            raise UserError(f"{where}: expected an object")
        for key in ("hardware", "dtype", "phase"):
            if not isinstance(fit.get(key), str) or not fit[key]:
                raise UserError(f"{where}.{key}: expected a non-empty string, got {fit.get(key)!r}")
        if fit["phase"] not in PHASES:
            raise UserError(f"{where}.phase: expected one of {', '.join(PHASES)}, got {fit['phase']!r}")
        key = (fit["hardware"], fit["dtype"], fit["phase"])
        if key in seen:
            raise UserError(f"{where}: duplicate fit for {' '.join(key)}")
        seen.add(key)
        _num(f"{where}.eta_compute", fit.get("eta_compute"), allow_none=True)
        _num(f"{where}.eta_memory", fit.get("eta_memory"), allow_none=True)
        _num(f"{where}.t0_s", fit.get("t0_s"), allow_zero=True)
        _num(f"{where}.peak_flops_per_s", fit.get("peak_flops_per_s"))
        _num(f"{where}.peak_bytes_per_s", fit.get("peak_bytes_per_s"), allow_none=fit.get("eta_memory") is None)
        if fit.get("peak_flops_source") not in _SOURCES:
            raise UserError(f"{where}.peak_flops_source: expected one of {', '.join(_SOURCES)}, "
                            f"got {fit.get('peak_flops_source')!r}")
        if fit.get("eta_compute") is None and fit.get("eta_memory") is None:
            raise UserError(f"{where}: eta_compute and eta_memory are both null")
        heldout = fit.get("heldout")
        if not isinstance(heldout, dict):
            raise UserError(f"{where}.heldout: missing")
        _num(f"{where}.heldout.median_rel_error", heldout.get("median_rel_error"), allow_zero=True)
        _num(f"{where}.heldout.max_rel_error", heldout.get("max_rel_error"), allow_zero=True)
        n = fit.get("n_rows")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"{where}.n_rows: expected a positive integer, got {n!r}")


def step_model(fit: dict) -> StepModel:
    """The StepModel of one validated fit entry."""
    return StepModel(fit.get("eta_compute"), fit.get("eta_memory"), float(fit["t0_s"]),
                     float(fit["peak_flops_per_s"]), fit.get("peak_bytes_per_s"))
