"""Apply a calibration: predict a step's time, regime and effective MFU for a workload.

``find_fit`` looks up the fit of (hardware, dtype, phase). A fit is used on the hardware it was measured on;
applying it to another accelerator needs ``transfer=True`` (``--transfer``) and then uses the fitted η's
and t0 with the *target's* datasheet peaks, labelled "transferred from <hw> <dtype>": an assumption (the
same software stack reaches the same share of a different chip's peak), never a silent substitution.

``predict_workload`` counts F and B with the cost model's own formulas (``costmodel.flops`` / ``memory``,
in the calibration's FLOP convention) and the overhead with the model's own depth L (t0 + L·τ when the fit
has a per-layer overhead), and predicts t; the estimates then price t seconds of one accelerator per step
through the effective utilization F / (t · P), with the cost model's one formula.
"""

from __future__ import annotations

import math

from llmecon.calibration.document import Calibration, Fit
from llmecon.calibration.model import StepModel
from llmecon.costmodel import flops as cf
from llmecon.costmodel import memory as cm
from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.estimate import achieved_utilization, utilization_problem
from llmecon.costmodel.hardware import get_accelerator
from llmecon.errors import UserError, require_count


def find_fit(calib: Calibration, hardware: str, dtype: str, phase: str, *, transfer: bool = False,
             source: str | None = None) -> tuple[Fit, StepModel, str]:
    """(fit, the StepModel to predict with, a label saying where the numbers come from)."""
    own = [f for f in calib.fits if f.matches(hardware)]
    basis = f"published {calib.engine} points" if calib.basis == "published" else "calibrated"
    if own:
        for f in own:
            if f.dtype == dtype and f.phase == phase:
                return f, f.step_model(), f"{basis} on {f.hardware} ({f.dtype} {phase})"
        raise UserError(f"the calibration has no {dtype} {phase} fit for {hardware}; it has: {calib.summary()}")
    if not transfer:
        raise calib.needs_transfer(hardware)
    candidates = [f for f in calib.fits if f.phase == phase and (source is None or f.matches(source))]
    if not candidates:
        raise UserError(f"the calibration has no {phase} fit to transfer; it has: {calib.summary()}")
    candidates = [f for f in candidates if f.dtype == dtype] or candidates
    if len({(f.hardware, f.dtype) for f in candidates}) > 1:
        raise UserError(f"several {phase} fits could be transferred to {hardware} "
                        f"({', '.join(f.hardware + ' ' + f.dtype for f in candidates)}): name the source")
    src = candidates[0]
    acc = get_accelerator(hardware)
    peak = acc.peak(dtype)
    if peak is None:
        raise UserError(f"{hardware} has no dense {dtype} peak in the hardware sheet: cannot transfer to it")
    model = StepModel(src.eta_compute, src.eta_memory, src.t0_s, float(peak), float(acc.memory_bytes_per_s),
                      src.tau_s_per_layer)
    origin = f"{basis} on {src.hardware}" if calib.basis == "published" else src.hardware
    return src, model, f"transferred from {origin} ({src.dtype} {phase}) to {hardware} {dtype}"


def predict_detail(calib: Calibration, hardware: str, dtype: str, phase: str, flops_per_step: float,
                   bytes_per_step: float | None = None, *, transfer: bool = False, source: str | None = None,
                   layers: int | None = None) -> dict:
    """Everything a prediction knows: time, regime, each term, effective MFU, the peak it is against, the
    label, and whether the workload lies outside the measured range (an extrapolation: FLOPs, or with a
    per-layer overhead the depth). ``layers``: the model's decoder layers, required when the fit has τ."""
    if not (isinstance(flops_per_step, (int, float)) and math.isfinite(flops_per_step) and flops_per_step > 0):
        raise UserError(f"flops_per_step must be a finite number > 0, got {flops_per_step!r}")
    fit, model, label = find_fit(calib, hardware, dtype, phase, transfer=transfer, source=source)
    if model.eta_memory is None:
        bytes_per_step = None   # the fit has no memory term (prefill, train): bytes do not enter
    terms = model.terms_s(float(flops_per_step), bytes_per_step, layers)
    t, regime = model.step_time_s(float(flops_per_step), bytes_per_step, layers)
    lo, hi = fit.range.flops_per_step
    depths = fit.range.layers
    deeper = bool(model.tau_s_per_layer and depths and not (depths[0] <= layers <= depths[1]))
    transferred = not fit.matches(hardware)
    return {
        "step_time_s": t, "regime": regime, "terms_s": terms,
        "effective_mfu": achieved_utilization(flops_per_step, t, model.peak_flops_per_s),
        "peak_flops_per_s": model.peak_flops_per_s,
        "peak_source": "datasheet" if transferred else fit.peak_flops_source,
        "flop_convention": calib.flop_convention,
        "label": label, "transferred": transferred,
        "extrapolated": not (lo <= flops_per_step <= hi) or deeper,
        "heldout_median_rel_error": fit.heldout.median_rel_error,
        "heldout_max_rel_error": fit.heldout.max_rel_error,
        "heldout_by_model_median_rel_error": fit.heldout_by_model.median_rel_error if fit.heldout_by_model else None,
        "heldout_by_model_max_rel_error": fit.heldout_by_model.max_rel_error if fit.heldout_by_model else None,
        "eta_compute": model.eta_compute, "eta_memory": model.eta_memory, "t0_s": model.t0_s,
        "tau_s_per_layer": model.tau_s_per_layer, "layers": layers, "fit_models": list(fit.models),
    }


def predict(calib: Calibration, hardware: str, dtype: str, phase: str, flops_per_step: float,
            bytes_per_step: float | None = None, *, transfer: bool = False,
            layers: int | None = None) -> tuple[float, str]:
    """(predicted seconds per step, regime: "compute-bound" | "memory-bound" | "overhead-bound")."""
    d = predict_detail(calib, hardware, dtype, phase, flops_per_step, bytes_per_step, transfer=transfer,
                       layers=layers)
    return d["step_time_s"], d["regime"]


def priceable_mfu(detail: dict) -> float:
    """The effective MFU of a prediction, checked before it reaches a cost (docs/measuring.md)."""
    problem = utilization_problem(detail["effective_mfu"])
    if problem:
        raise UserError(f"the calibration implies an effective MFU that is {problem} against the "
                        f"{detail['peak_source'].replace('_', ' ')} ({detail['label']}): that peak is below what "
                        "was measured; re-run the bench to re-measure the ceiling")
    return detail["effective_mfu"]


def predict_workload(calib: Calibration, shape: ModelShape, phase: str, batch_size: int, length: int, *,
                     hardware: str, dtype: str, transfer: bool = False) -> dict:
    """The step of ``shape`` at a batch and length, predicted: F and B from the cost model in the
    calibration's convention, the overhead at the shape's depth, then `predict_detail`. ``length`` is the
    context a decode step attends, or the tokens per sequence of a prefill or training step. Adds
    flops_per_step, bytes_per_step, tokens_per_step, tokens_per_s_per_accelerator, and model_measured
    (whether the fit measured a model of that name: if not, its leave-one-model-out error is the one
    that applies)."""
    batch_size = require_count("batch size", batch_size)
    length = require_count("length", length)
    conv = calib.flop_convention
    if phase == "decode":
        F = cf.decode_step_flops(shape, batch_size, length, conv)
        B = cm.decode_step_bytes(shape, dtype, batch_size, length)
        tokens = batch_size
    elif phase == "prefill":
        F, B, tokens = cf.prefill_flops(shape, batch_size, length, conv), None, batch_size * length
    elif phase == "train":
        F, B, tokens = cf.train_step_flops(shape, batch_size, length, conv), None, batch_size * length
    else:
        raise UserError(f"unknown phase {phase!r}")
    d = predict_detail(calib, hardware, dtype, phase, F, B, transfer=transfer, layers=shape.num_hidden_layers)
    return {"flops_per_step": F, "bytes_per_step": B, "tokens_per_step": tokens,
            "tokens_per_s_per_accelerator": tokens / d["step_time_s"],
            "model_measured": shape.name in d["fit_models"], **d}
