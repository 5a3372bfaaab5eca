"""Apply a calibration: predict a step's time and regime, and price a workload with it.

``predict`` looks up the fit of (hardware, dtype, phase). A fit is used on the hardware it was measured
on; applying it to another accelerator needs ``transfer=True`` and then uses the fitted η's and t0 with
the *target's* datasheet peaks, labelled "transferred from <hw> <dtype>" — an assumption (the same
software stack reaches the same share of a different chip's peak), never a silent substitution.

The estimates count F and B with the cost model's own formulas (``costmodel.flops``/``memory``, the
calibration's FLOP convention), predict t, and pass the *effective* utilisation F / (t · P) to the
cost model's ``inference_cost`` / ``training_cost`` in place of a flat MFU — so there is one cost
formula, and the price it gives is exactly t seconds of one accelerator per step.
"""

from __future__ import annotations

import math
from typing import Any

from llmecon.calibrate.model import StepModel
from llmecon.calibrate.schema import step_model
from llmecon.errors import UserError


def _describe(calib: dict) -> str:
    return ", ".join(f"{f['hardware']} {f['dtype']} {f['phase']}" for f in calib["fits"])


def _matches(fit: dict, hardware: str) -> bool:
    return hardware in (fit["hardware"], fit.get("hardware_id"))


def calibrated_hardware(calib: dict, phase: str | None = None) -> str:
    """The one hardware the calibration covers (for this phase); UserError if none or several."""
    hws = sorted({f["hardware"] for f in calib["fits"] if phase is None or f["phase"] == phase})
    if not hws:
        raise UserError(f"the calibration has no {phase} fit; it has: {_describe(calib)}")
    if len(hws) != 1:
        what = f" for phase {phase}" if phase else ""
        raise UserError(f"the calibration covers {len(hws)} accelerators{what} ({', '.join(hws) or 'none'}): "
                        f"choose one with --hardware")
    return hws[0]


def calibrated_dtype(calib: dict, hardware: str, phase: str, *, transfer: bool = False) -> str:
    """The one dtype fitted for (hardware, phase) — or, with transfer, for the phase on any hardware."""
    if not transfer and not any(_matches(f, hardware) for f in calib["fits"]):
        raise _needs_transfer(calib, hardware)
    fits = [f for f in calib["fits"] if f["phase"] == phase and (_matches(f, hardware) or transfer)]
    dtypes = sorted({f["dtype"] for f in fits})
    if len(dtypes) != 1:
        raise UserError(f"the calibration has {len(dtypes)} dtypes for {phase} ({', '.join(dtypes) or 'none'}): "
                        f"choose one with --dtype")
    return dtypes[0]


def _needs_transfer(calib: dict, hardware: str) -> UserError:
    return UserError(f"the calibration was measured on {', '.join(sorted({f['hardware'] for f in calib['fits']}))}, "
                     f"not on {hardware}; applying it to another accelerator needs --transfer "
                     f"(transfer=True), and is labelled as such")


def find_fit(calib: dict, hardware: str, dtype: str, phase: str, *, transfer: bool = False,
             source: str | None = None) -> tuple[dict, StepModel, str]:
    """(fit entry, StepModel to predict with, label). The label says where the numbers come from."""
    own = [f for f in calib["fits"] if _matches(f, hardware)]
    if own:
        for f in own:
            if f["dtype"] == dtype and f["phase"] == phase:
                return f, step_model(f), f"calibrated on {f['hardware']} ({f['dtype']} {phase})"
        raise UserError(f"the calibration has no {dtype} {phase} fit for {hardware}; it has: {_describe(calib)}")
    if not transfer:
        raise _needs_transfer(calib, hardware)
    candidates = [f for f in calib["fits"] if f["phase"] == phase and (source is None or _matches(f, source))]
    if not candidates:
        raise UserError(f"the calibration has no {phase} fit to transfer; it has: {_describe(calib)}")
    same_dtype = [f for f in candidates if f["dtype"] == dtype]
    candidates = same_dtype or candidates
    if len({(f["hardware"], f["dtype"]) for f in candidates}) > 1:
        raise UserError(f"several {phase} fits could be transferred to {hardware} "
                        f"({', '.join(f['hardware'] + ' ' + f['dtype'] for f in candidates)}): name the source")
    src = candidates[0]
    from llmecon.costmodel.hardware import get_accelerator

    acc = get_accelerator(hardware)
    peak = acc.peak(dtype)
    if peak is None:
        raise UserError(f"{hardware} has no dense {dtype} peak in the hardware sheet: cannot transfer to it")
    model = StepModel(src.get("eta_compute"), src.get("eta_memory"), float(src["t0_s"]), float(peak),
                      float(acc.memory_bytes_per_s))
    label = f"transferred from {src['hardware']} ({src['dtype']} {phase}) to {hardware} {dtype}"
    return src, model, label


def predict_detail(calib: dict, hardware: str, dtype: str, phase: str, flops_per_step: float,
                   bytes_per_step: float | None = None, *, transfer: bool = False, source: str | None = None) -> dict:
    """Everything ``predict`` knows: time, regime, each term, effective MFU, the peak it is against,
    the label, and whether the workload lies outside the measured range (an extrapolation)."""
    if not (isinstance(flops_per_step, (int, float)) and math.isfinite(flops_per_step) and flops_per_step > 0):
        raise UserError(f"flops_per_step must be a finite number > 0, got {flops_per_step!r}")
    fit, model, label = find_fit(calib, hardware, dtype, phase, transfer=transfer, source=source)
    if model.eta_memory is None:
        bytes_per_step = None   # the fit has no memory term (prefill/train): bytes do not enter
    terms = model.terms_s(float(flops_per_step), bytes_per_step)
    t, regime = model.step_time_s(float(flops_per_step), bytes_per_step)
    lo, hi = (fit.get("range") or {}).get("flops_per_step") or (None, None)
    extrapolated = lo is not None and not (lo <= flops_per_step <= hi)
    return {
        "step_time_s": t, "regime": regime, "terms_s": terms,
        "effective_mfu": flops_per_step / (t * model.peak_flops_per_s),
        "peak_flops_per_s": model.peak_flops_per_s,
        "peak_source": "datasheet" if (transfer and not _matches(fit, hardware)) else fit["peak_flops_source"],
        "flop_convention": calib["flop_convention"],
        "label": label, "transferred": not _matches(fit, hardware),
        "extrapolated": bool(extrapolated),
        "heldout_median_rel_error": fit["heldout"]["median_rel_error"],
        "heldout_max_rel_error": fit["heldout"]["max_rel_error"],
        "eta_compute": model.eta_compute, "eta_memory": model.eta_memory, "t0_s": model.t0_s,
    }


def predict(calib: dict, hardware: str, dtype: str, phase: str, flops_per_step: float,
            bytes_per_step: float | None = None, *, transfer: bool = False) -> tuple[float, str]:
    """(predicted seconds per step, regime) — regime is "compute-bound" | "memory-bound" | "overhead-bound"."""
    d = predict_detail(calib, hardware, dtype, phase, flops_per_step, bytes_per_step, transfer=transfer)
    return d["step_time_s"], d["regime"]


def effective_mfu(calib: dict, hardware: str, dtype: str, phase: str, flops_per_step: float,
                  bytes_per_step: float | None = None, *, transfer: bool = False) -> float:
    """F / (t · P): the utilisation the calibration implies (P: the fit's reference peak, or the target's
    datasheet peak when transferred; F in the calibration's FLOP convention)."""
    return predict_detail(calib, hardware, dtype, phase, flops_per_step, bytes_per_step,
                          transfer=transfer)["effective_mfu"]


def _priceable_mfu(d: dict) -> float:
    """The effective MFU, checked before it reaches a cost (DESIGN "Measuring honestly" 8)."""
    mfu = d["effective_mfu"]
    if not (0 < mfu <= 1):
        raise UserError(f"the calibration implies an effective MFU of {mfu:.3g} against the "
                        f"{d['peak_source'].replace('_', ' ')} ({d['label']}): outside (0, 1], so that peak is "
                        f"below what was measured; re-run the bench to re-measure the ceiling")
    return mfu


def _shape(model: Any):
    from llmecon.costmodel.architecture import ModelShape, load_model_shape

    return model if isinstance(model, ModelShape) else load_model_shape(model)


def _resolve(calib, hardware, dtype, phase, transfer):
    hardware = hardware or calibrated_hardware(calib, phase)
    dtype = dtype or calibrated_dtype(calib, hardware, phase, transfer=transfer)
    return hardware, dtype


def estimate_inference(calib: dict, model: Any, *, hardware: str | None = None, dtype: str | None = None,
                       phase: str = "decode", batch_size: int = 1, context_len: int = 1024,
                       usd_per_accelerator_hour: float | None = None, transfer: bool = False) -> dict:
    """Cost of inference at a batch and context, from the calibration.

    decode: one new token per sequence with ``context_len`` positions attended (F, B from the cost model);
    prefill: one forward over batch x context_len (tokens = batch x context_len). Cost (when a price is
    given) comes from costmodel.estimate.inference_cost with the effective MFU."""
    from llmecon.costmodel import flops as cf
    from llmecon.costmodel import memory as cm
    from llmecon.errors import require_positive

    if phase not in ("decode", "prefill"):
        raise UserError(f"inference phase must be decode or prefill, got {phase!r}")
    batch_size = int(require_positive("batch size", batch_size))
    context_len = int(require_positive("context length", context_len))
    shape = _shape(model)
    hardware, dtype = _resolve(calib, hardware, dtype, phase, transfer)
    conv = calib["flop_convention"]
    if phase == "decode":
        F = cf.decode_step_flops(shape, batch_size, context_len, conv)
        B = cm.decode_step_bytes(shape, dtype, batch_size, context_len)
        tokens = batch_size
    else:
        F = cf.prefill_flops(shape, batch_size, context_len, conv)
        B = None
        tokens = batch_size * context_len
    d = predict_detail(calib, hardware, dtype, phase, F, B, transfer=transfer)
    out = {"model": shape.name, "hardware": hardware, "dtype": dtype, "phase": phase, "batch_size": batch_size,
           "context_len": context_len, "flops_per_step": F, "bytes_per_step": B, "tokens_per_step": tokens,
           "tokens_per_s_per_accelerator": tokens / d["step_time_s"]} | d
    if usd_per_accelerator_hour is not None:
        from llmecon.costmodel.estimate import inference_cost

        out["cost"] = inference_cost(F / tokens, d["peak_flops_per_s"], _priceable_mfu(d), usd_per_accelerator_hour)
    return out


def estimate_training(calib: dict, model: Any, tokens: float, *, hardware: str | None = None,
                      dtype: str | None = None, batch_size: int = 8, seq_len: int = 2048,
                      usd_per_accelerator_hour: float | None = None, num_accelerators: int = 1,
                      transfer: bool = False, state_bytes: float | None = None,
                      memory_bytes: float | None = None) -> dict:
    """Cost of training on ``tokens`` tokens in steps of batch_size x seq_len per accelerator.

    Total FLOPs are counted in the calibration's convention (train_step_flops x steps) so that they and
    the effective MFU agree; K accelerators are assumed to scale perfectly (no communication term)."""
    from llmecon.costmodel import flops as cf
    from llmecon.errors import require_positive

    tokens = require_positive("tokens", tokens)
    batch_size = int(require_positive("batch size", batch_size))
    seq_len = int(require_positive("sequence length", seq_len))
    shape = _shape(model)
    hardware, dtype = _resolve(calib, hardware, dtype, "train", transfer)
    F = cf.train_step_flops(shape, batch_size, seq_len, calib["flop_convention"])
    d = predict_detail(calib, hardware, dtype, "train", F, None, transfer=transfer)
    steps = tokens / (batch_size * seq_len)
    out = {"model": shape.name, "hardware": hardware, "dtype": dtype, "phase": "train", "tokens": tokens,
           "batch_size": batch_size, "seq_len": seq_len, "flops_per_step": F, "steps": steps,
           "flops_total": F * steps, "tokens_per_s_per_accelerator": batch_size * seq_len / d["step_time_s"]} | d
    if usd_per_accelerator_hour is not None:
        from llmecon.costmodel.estimate import training_cost

        out["cost"] = training_cost(F * steps, d["peak_flops_per_s"], _priceable_mfu(d), usd_per_accelerator_hour,
                                    num_accelerators=num_accelerators, state_bytes=state_bytes,
                                    memory_bytes=memory_bytes)
    return out
