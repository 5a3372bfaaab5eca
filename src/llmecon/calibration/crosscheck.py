"""How well does calibrating on one chip price another? The article's central move, tested on published points.

The article measured nothing: it took one utilization (21.3 % for inference, 46.2 % for training) and priced every
accelerator with it through its datasheet peak. A published reference calibration can be checked the same way:

- **transfer**: the fit of one (engine, accelerator, dtype, phase) — its η's, t0 and τ — predicts the points of
  every other accelerator of the same phase and number format through *their* datasheet peaks (calibration.apply's ``--transfer``);
  the error is |predicted − published| / published per point, summarised by its median and maximum over the target's
  points. Rows of one engine test the hardware move alone; rows across engines add the software's difference.
- **leave-one-source-out**: within one (engine, accelerator, dtype, phase) whose points come from two or more
  sources, each source's points are predicted by a fit (fit.fit_group, the same code) on the other sources' points.
- **other engine, same accelerator**: the fit predicts another engine's points on its own accelerator (and number
  format): what the software alone moves.
- **in place**: the fit's own leave-one-shape-out error, for scale.

Inputs are the rows and calibrations of calibration.published; the output is one row per (fitted on, predicts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmecon.calibration.document import Calibration, Fit
from llmecon.calibration.fit import fit_group
from llmecon.calibration.model import StepModel
from llmecon.vocab import CALIBRATION_CONVENTION

# A transfer keeps the number format: fp16 and bf16 have one dense peak on every accelerator of the sheet that has
# both, so a 16-bit fit predicts either; fp8 or fp32 points are not predicted from a 16-bit fit (their peaks differ
# by 2x and their kernels by more).
_FORMAT = {"fp16": "16-bit", "bf16": "16-bit"}
COLUMNS = ("phase", "check", "fitted_engine", "fitted_hardware", "fitted_dtype", "fitted_points", "target_engine",
           "target_hardware", "target_dtype", "target_points", "median_rel_error", "max_rel_error")


def _errors(model_of_row, rows: pd.DataFrame) -> np.ndarray:
    """|predicted − published| / published for each row, the StepModel for a row given by ``model_of_row``."""
    out = []
    for _, r in rows.iterrows():
        model = model_of_row(r)
        b = r["bytes_per_step"] if model.eta_memory is not None else None
        t, _ = model.step_time_s(float(r[f"flops_per_step_{CALIBRATION_CONVENTION}"]),
                                 None if b is None or pd.isna(b) else float(b), int(r["num_hidden_layers"]))
        out.append(abs(t - r["step_time_s"]) / r["step_time_s"])
    return np.array(out)


def _transferred(fit: Fit):
    """The fit's η's, t0 and τ with a target row's own datasheet peaks."""
    def model(row) -> StepModel:
        return StepModel(fit.eta_compute, fit.eta_memory, fit.t0_s, float(row["peak_flops_per_s"]),
                         float(row["peak_bytes_per_s"]), fit.tau_s_per_layer)
    return model


def _row(phase, check, fitted: tuple, n_fitted: int, target: tuple, errors: np.ndarray) -> dict:
    return _summary(phase, check, fitted, n_fitted, target, len(errors), float(np.median(errors)),
                    float(np.max(errors)))


def _summary(phase, check, fitted: tuple, n_fitted: int, target: tuple, n_target: int, median: float,
             worst: float) -> dict:
    return dict(zip(COLUMNS, (phase, check, *fitted, n_fitted, *target, n_target, median, worst)))


def source_label(url: str) -> str:
    """A source's short name: its file name, with the commit of a GitHub blob address ('performance.md @ 250d9c2')."""
    parts = url.rstrip("/").split("/")
    label = parts[-1]
    if "blob" in parts and parts.index("blob") + 1 < len(parts):
        label += f" @ {parts[parts.index('blob') + 1][:7]}"
    return label


def _leave_one_source_out(group: pd.DataFrame, key: tuple) -> list[dict]:
    out = []
    for source in sorted(set(group["source"])):
        train, test = group[group["source"] != source], group[group["source"] == source]
        entry = fit_group(train, force=True)
        if "refused" in entry:
            continue
        fit = StepModel(entry["eta_compute"], entry["eta_memory"], entry["t0_s"], entry["peak_flops_per_s"],
                        entry["peak_bytes_per_s"], entry["tau_s_per_layer"])
        out.append(_row(key[3], f"leave out {source_label(source)}", key[:3], len(train), key[:3],
                        _errors(lambda r, f=fit: f, test)))
    return out


def cross_hardware(rows: pd.DataFrame, calibrations: dict[str, Calibration]) -> pd.DataFrame:
    """One row per check (see the module's docstring), sorted by phase, check and target."""
    out = []
    keys = ["engine", "hardware", "dtype", "phase"]
    groups = {k: g for k, g in rows.groupby(keys)} if len(rows) else {}
    for engine, calib in sorted(calibrations.items()):
        for fit in calib.fits:
            fitted = (engine, fit.hardware, fit.dtype)
            own = groups.get((*fitted, fit.phase))
            out.append(_summary(fit.phase, "in place (leave-one-shape-out)", fitted, fit.n_rows, fitted, fit.n_rows,
                                fit.heldout.median_rel_error, fit.heldout.max_rel_error))
            if own is not None and own["source"].nunique() >= 2:
                out += _leave_one_source_out(own, (*fitted, fit.phase))
            for (t_engine, t_hw, t_dtype, t_phase), target in sorted(groups.items()):
                if t_phase != fit.phase or (t_engine, t_hw, t_dtype) == fitted or \
                        _FORMAT.get(t_dtype, t_dtype) != _FORMAT.get(fit.dtype, fit.dtype):
                    continue
                check = "transfer" if t_hw != fit.hardware else "other engine, same accelerator"
                out.append(_row(fit.phase, check, fitted, fit.n_rows, (t_engine, t_hw, t_dtype),
                                _errors(_transferred(fit), target)))
    frame = pd.DataFrame(out, columns=list(COLUMNS))
    order = {"in place (leave-one-shape-out)": 0, "other engine, same accelerator": 2, "transfer": 3}
    frame["_o"] = frame["check"].map(lambda c: order.get(c, 1))
    return frame.sort_values(["phase", "fitted_engine", "fitted_hardware", "fitted_dtype", "_o", "target_hardware",
                              "target_engine"]).drop(columns="_o").reset_index(drop=True)
