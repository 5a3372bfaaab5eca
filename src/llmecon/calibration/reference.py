"""The published reference calibrations an estimate falls back on when it is given neither ``--mfu`` nor
``--calibration``: read from the shipped file (fitted from the built-in sheet by calibration.published, which a
test keeps equal to a fresh fit), or from the file $LLMECON_REFERENCE names (the user's own published sheets fitted
with `llmecon calibrations --fit-published FILE`).

`choose` picks the fit for an accelerator and phase: the engine given (``--engine``), else the one with the most
points for that accelerator (and dtype, when one is asked for). Where no engine has points on that accelerator, the
nearest accelerator's fit is transferred through the datasheet peaks — nearest by |ln(P_a/P_b)| + |ln(W_a/W_b)| over
the dense peak of the fit's dtype (or of its 16-bit sibling, fp16 for bf16 and back, where the target has only that
one) and the memory bandwidth — and labelled so; where nothing can be transferred (the
target has no peak for any fitted dtype) the estimate is refused in one line. This module imports neither numpy nor
pandas, so that `llmecon estimate` stays fast.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

from llmecon.calibration.document import Calibration, Fit
from llmecon.costmodel.hardware import get_accelerator
from llmecon.errors import UserError
from llmecon.files import load_json
from llmecon.formats import parse

SHIPPED = Path(__file__).parent / "data" / "published-calibrations.json"
SHIPPED_KIND = "llmecon-published-calibrations"
_SIBLING = {"fp16": "bf16", "bf16": "fp16"}
ENV_VAR = "LLMECON_REFERENCE"


@dataclass(frozen=True)
class Reference:
    """The fit an estimate uses: ``calibration`` holds that one fit (so that applying it cannot pick another)."""

    engine: str
    calibration: Calibration
    fit: Fit
    hardware: str          # the accelerator priced
    transferred: bool      # the fit was made on another accelerator
    dtype: str             # the dtype priced: the fit's, or its 16-bit sibling on a target without that peak

    def describe(self) -> str:
        """'published tensorrt-llm points on h100-sxm (fp8 decode): 4 points from 1 source'."""
        n_src = len(self.fit.sources)
        text = (f"published {self.engine} points on {self.fit.hardware} ({self.fit.dtype} {self.fit.phase}): "
                f"{self.fit.n_rows} points from {n_src} source{'s' * (n_src != 1)}")
        return text + (f", transferred to {self.hardware} through the datasheet peaks" if self.transferred else "")


@functools.lru_cache(maxsize=8)
def _from_file(path: str) -> tuple[dict[str, Calibration], dict[str, str]]:
    doc = load_json(path, "reference calibrations")
    if not (isinstance(doc, dict) and doc.get("kind") == SHIPPED_KIND and isinstance(doc.get("calibrations"), list)
            and isinstance(doc.get("unfitted", {}), dict)):
        raise UserError(f"{path}: not a file of published reference calibrations (kind {SHIPPED_KIND})")
    calibs = [parse(Calibration, c, str(path)) for c in doc["calibrations"]]
    if any(c.basis != "published" or not c.engine for c in calibs):
        raise UserError(f"{path}: every reference calibration must have basis 'published' and an engine")
    return {c.engine: c for c in calibs}, {str(k): str(v) for k, v in doc.get("unfitted", {}).items()}


def _path() -> str:
    return os.environ.get(ENV_VAR) or str(SHIPPED)


def references() -> dict[str, Calibration]:
    """engine -> its published calibration: the shipped ones, or those of the file $LLMECON_REFERENCE names
    (`llmecon calibrations --fit-published FILE` fits the built-in sheet plus $LLMECON_PUBLISHED's into one)."""
    return _from_file(_path())[0]


def unfitted() -> dict[str, str]:
    """engine -> why none of its published points could be fitted."""
    return _from_file(_path())[1]


def _target_dtype(fit: Fit, target, wanted: str | None) -> str | None:
    """The dtype a transferred fit prices on ``target``: the fit's, or, where the target has no peak for it, its
    16-bit sibling (fp16 and bf16 have one dense peak on every accelerator of the sheet that has both); None if
    neither, or if it is not the ``wanted`` one."""
    for d in (fit.dtype, _SIBLING.get(fit.dtype)):
        if d is not None and target.peak(d) is not None and (wanted is None or d == wanted):
            return d
    return None


def _distance(fit: Fit, target, dtype: str) -> float:
    d = abs(math.log(fit.peak_flops_per_s / target.peak(dtype)))
    if fit.peak_bytes_per_s:
        d += abs(math.log(fit.peak_bytes_per_s / target.memory_bytes_per_s))
    return d


def _one(engine: str, fit: Fit, hardware: str, transferred: bool, dtype: str) -> Reference:
    calib = references()[engine]
    return Reference(engine, calib.model_copy(update={"fits": [fit], "refused": []}), fit, hardware, transferred,
                     dtype)


def choose(hardware: str, phase: str, *, dtype: str | None = None, engine: str | None = None,
           preferred_dtype: str | None = None) -> Reference:
    """The published fit for ``phase`` on ``hardware`` (see the module's docstring for the rule); without ``dtype``,
    a fit in ``preferred_dtype`` goes before one with more points in another dtype."""
    refs = references()
    if engine is not None and engine not in refs:
        raise UserError(f"no published calibration for engine {engine!r}; there are: {', '.join(sorted(refs))} "
                        "(`llmecon calibrations`)")
    candidates = [(e, f) for e, c in sorted(refs.items()) for f in c.fits
                  if f.phase == phase and (engine is None or e == engine)]
    what = f"{phase}{' of ' + engine if engine else ''}"
    instead = "--calibration FILE" if phase == "prefill" else "--mfu U or --calibration FILE"   # flat: decode, train
    if not candidates:
        raise UserError(f"no published {what} reference calibration: give {instead}")
    own = [(e, f) for e, f in candidates if f.matches(hardware) and (dtype is None or f.dtype == dtype)]
    if own:
        e, f = max(own, key=lambda ef: (ef[1].dtype == preferred_dtype, ef[1].n_rows, ef[0]))
        return _one(e, f, hardware, False, f.dtype)
    target = get_accelerator(hardware)
    scored = [(_distance(f, target, d), -f.n_rows, e, f, d) for e, f in candidates
              if (d := _target_dtype(f, target, dtype)) is not None]
    if not scored:
        have = ", ".join(sorted({f"{f.hardware} {f.dtype}" for _, f in candidates}))
        raise UserError(f"no published {what} reference for {hardware}{' ' + dtype if dtype else ''}, and none that "
                        f"transfers to it (there are: {have}); give {instead}")
    _, _, e, f, d = min(scored, key=lambda s: (s[0], s[4] != preferred_dtype, *s[1:3]))
    return _one(e, f, hardware, True, d)


def fit_rows(calib: Calibration, name: str) -> list[dict]:
    """One row per fit of a calibration (and per group it refused): where it comes from (``name``: the engine of a
    published one, the file of a measured one), accelerator, dtype, phase, points, efficiencies, errors, sources."""
    rows = []
    for f in calib.fits:
        rows.append({"basis": calib.basis, "name": name, "hardware": f.hardware, "dtype": f.dtype, "phase": f.phase,
                     "points": f.n_rows, "shapes": f.n_shapes, "models": list(f.models),
                     "eta_compute": f.eta_compute, "eta_memory": f.eta_memory, "t0_s": f.t0_s,
                     "tau_s_per_layer": f.tau_s_per_layer, "heldout_median_rel_error": f.heldout.median_rel_error,
                     "heldout_by_model_median_rel_error":
                         f.heldout_by_model.median_rel_error if f.heldout_by_model else None,
                     "sources": list(f.sources), "point_ids": list(f.run_ids), "refused": None})
    for r in calib.refused:
        rows.append({"basis": calib.basis, "name": name, "hardware": r.hardware, "dtype": r.dtype, "phase": r.phase,
                     "points": r.n_rows, "shapes": r.n_shapes, "refused": r.refused})
    return rows


def list_calibrations(paths=()) -> list[dict]:
    """The published fits of every engine, then those of the calibration files in ``paths`` (files, or folders
    searched for them): one dict per fit, and per group or engine that could not be fitted (``refused``).

    >>> rows = list_calibrations()
    >>> sorted({r["name"] for r in rows if r["basis"] == "published" and not r["refused"]})
    ['meta-llama3', 'tensorrt-llm', 'torchtitan']
    """
    rows = [row for engine, calib in sorted(references().items()) for row in fit_rows(calib, engine)]
    rows += [{"basis": "published", "name": engine, "hardware": None, "dtype": None, "phase": None, "points": None,
              "shapes": None, "refused": why} for engine, why in sorted(unfitted().items())]
    for path in calibration_files(paths):
        rows += fit_rows(Calibration.load(path), str(path))
    return rows


def calibration_files(paths) -> list[Path]:
    """The calibration files among ``paths``: files as given, folders searched (recursively) for JSON files whose
    ``kind`` is a calibration's; UserError for a path that does not exist."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(f for f in p.rglob("*.json") if _is_calibration(f))
        else:
            raise UserError(f"{p}: no such file or folder")
    return out


def _is_calibration(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(400)
    except (OSError, UnicodeDecodeError):
        return False
    return '"kind": "llmecon-calibration"' in head
