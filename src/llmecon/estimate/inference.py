"""What generating (or prefilling) tokens costs: `estimate_inference`, the library behind
`llmecon estimate inference` (it returns the dict that ``--json`` prints).

Flat (``mfu``): the article's framework, one utilization for every batch and context:
    seconds per 1K tokens = FLOPs per token x 1,000 / (dense peak x MFU); $ = seconds / 3,600 x $/hour.
Calibrated (``calibration``): the step at this phase, batch and context is predicted by the calibration
(calibration.apply), and priced as that many seconds of one accelerator per step through the effective MFU
it implies, in the same formula (costmodel.estimate.inference_cost).
"""

from __future__ import annotations

from llmecon.calibration.apply import predict_workload, priceable_mfu
from llmecon.calibration.document import Calibration
from llmecon.costmodel import estimate as formulas
from llmecon.costmodel.flops import decode_step_flops
from llmecon.costmodel.hardware import get_accelerator
from llmecon.errors import UserError
from llmecon.estimate import inputs
from llmecon.units import parse_whole

DEFAULT_CONTEXT_LEN = 2048
DEFAULT_BATCH_SIZE = 1
DEFAULT_PHASE = "decode"
FLAT_NOTE = ("Flat utilization for every batch size and context (as the article); small-batch decode is "
             "memory-bandwidth-bound, so this is optimistic there. Idle time is not priced.")
CALIBRATED_NOTE = ("Calibrated: t = F/(P·η_compute) + B/(W·η_memory) + t0 + L·τ at this phase, batch, context and "
                   "depth L (llmecon calibrate); the effective MFU replaces a flat --mfu in the same cost formula.")
ENERGY_NOTE = "Energy from TDP (board power limit) x time x PUE: an upper bound for the accelerator alone."


def estimate_inference(model, *, hardware: str | None = None, price: str | None = None, usd_per_hour=None,
                       mfu=None, dtype: str | None = None, convention: str | None = None, usd_per_kwh=None,
                       pue=inputs.DEFAULT_PUE, tdp_w=None, calibration=None, transfer: bool = False,
                       context_len=DEFAULT_CONTEXT_LEN, batch_size=DEFAULT_BATCH_SIZE,
                       phase: str = DEFAULT_PHASE, engine: str | None = None) -> dict:
    """Seconds and $ per 1K / 1M tokens and tokens/s per accelerator, as `llmecon estimate inference --json`.

    Flat, the article's way (GPT-3 on a p4d A100 at 21.3 %: $0.0035 per 1K tokens):

    >>> r = estimate_inference("gpt3-175b", hardware="a100-sxm4-40gb", price="aws-p4d.24xlarge-1yr-2023", mfu="21.3%")
    >>> round(r["usd_per_1k_tokens"], 4)
    0.0035

    With ``calibration`` (a file or a Calibration), the utilization is predicted at this phase, batch and
    context instead; ``transfer=True`` applies it to an accelerator other than the one measured. With neither
    ``mfu`` nor ``calibration``, the published reference calibration for the accelerator predicts it
    (calibration.reference; ``engine`` picks whose points), and the result says which.
    """
    shape = inputs.model_shape(model)
    calib = inputs.calibration(calibration)
    context = parse_whole("--context-len", context_len)
    batch = parse_whole("--batch-size", batch_size)
    conv = inputs.convention(convention, calib)
    if phase not in ("decode", "prefill"):
        raise UserError(f"--phase must be decode or prefill, got {phase!r}")
    inputs.check_basis(calib, mfu, transfer, hardware, engine)
    if calib is None and mfu is None:
        ref = inputs.published(hardware, phase, dtype, engine)
        out = _calibrated(shape, ref.calibration, ref.calibration, hardware, price, usd_per_hour, ref.dtype,
                          usd_per_kwh, pue, tdp_w, ref.transferred, phase, batch, context)
        return out | inputs.published_fields(ref, dtype, out["notes"])
    if calib is None:
        if phase != "decode":
            raise UserError("--phase prefill needs --calibration FILE (a flat --mfu prices every token alike)")
        return _flat(shape, get_accelerator(hardware), price, usd_per_hour, mfu, dtype, conv, usd_per_kwh, pue,
                     tdp_w, context)
    return _calibrated(shape, calib, calibration, hardware, price, usd_per_hour, dtype, usd_per_kwh, pue, tdp_w,
                       transfer, phase, batch, context)


def _flat(shape, accelerator, price_id, usd_per_hour, mfu, dtype, conv, usd_per_kwh, pue, tdp_w, context) -> dict:
    dtype, dtype_source = inputs.dtype(dtype, None, accelerator.id, "decode", False)
    peak = inputs.peak(accelerator, dtype)
    usd_hour, price_info = inputs.price(price_id, usd_per_hour, accelerator, accelerator.id)
    utilization = inputs.flat_mfu(mfu, "inference")
    flops_per_token = float(decode_step_flops(shape, 1, context, conv))
    result = formulas.inference_cost(flops_per_token, peak, utilization, usd_hour)
    energy = inputs.energy(result["seconds_per_1k_tokens"] / formulas.SECONDS_PER_HOUR, accelerator, accelerator.id,
                           usd_per_kwh, pue, tdp_w)
    notes = [FLAT_NOTE, *inputs.beyond_context(shape, context, "--context-len")]
    notes += [ENERGY_NOTE] if energy else []
    return {
        "basis": "flat", "model": shape.name, "hardware_id": accelerator.id, "dtype": dtype,
        "dtype_source": dtype_source, "convention": conv, "params_total": shape.params_total,
        "flops_per_token": flops_per_token, "context_len": context, "peak_flops_per_s": peak, "mfu": utilization,
        "mfu_source": "flat --mfu", "usd_per_accelerator_hour": usd_hour, "price": price_info, **result,
        "tokens_per_s": result["tokens_per_s_per_accelerator"],
        **inputs.energy_fields(energy, "_per_1k_tokens"), "notes": notes,
    }


def _calibrated(shape, calib, source, hardware, price_id, usd_per_hour, dtype, usd_per_kwh, pue, tdp_w, transfer,
                phase, batch, context) -> dict:
    hardware, accelerator = inputs.calibrated_target(calib, hardware, phase)
    dtype, dtype_source = inputs.dtype(dtype, calib, hardware, phase, transfer)
    usd_hour, price_info = inputs.price(price_id, usd_per_hour, accelerator, hardware)
    pred = predict_workload(calib, shape, phase, batch, context, hardware=hardware, dtype=dtype, transfer=transfer)
    result = formulas.inference_cost(pred["flops_per_step"] / pred["tokens_per_step"], pred["peak_flops_per_s"],
                                     priceable_mfu(pred), usd_hour)
    energy = inputs.energy(result["seconds_per_1k_tokens"] / formulas.SECONDS_PER_HOUR, accelerator, hardware,
                           usd_per_kwh, pue, tdp_w)
    return {
        "basis": "calibrated", "model": shape.name, "hardware_id": hardware, "dtype": dtype,
        "dtype_source": dtype_source, "convention": calib.flop_convention, "params_total": shape.params_total,
        "phase": phase, "batch_size": batch, "context_len": context,
        "flops_per_token": pred["flops_per_step"] / pred["tokens_per_step"],
        "flops_per_step": pred["flops_per_step"], "bytes_per_step": pred["bytes_per_step"],
        "peak_flops_per_s": pred["peak_flops_per_s"], "peak_source": pred["peak_source"],
        "mfu": pred["effective_mfu"], "mfu_source": pred["label"], "regime": pred["regime"],
        "step_time_s": pred["step_time_s"], "terms_s": pred["terms_s"], "transferred": pred["transferred"],
        "extrapolated": pred["extrapolated"], **heldout_fields(pred),
        "calibration": "(in memory)" if isinstance(source, Calibration) else str(source),
        "usd_per_accelerator_hour": usd_hour, "price": price_info, **result,
        "tokens_per_s": result["tokens_per_s_per_accelerator"],
        **inputs.energy_fields(energy, "_per_1k_tokens"), "notes": calibrated_notes(pred, dtype, dtype_source, energy),
    }


def heldout_fields(pred: dict) -> dict:
    """The fit's held-out errors (by shape; by model when it had two or more), the depth it was applied at, and
    whether the fit measured this model."""
    keys = ("heldout_median_rel_error", "heldout_max_rel_error", "heldout_by_model_median_rel_error",
            "heldout_by_model_max_rel_error", "model_measured", "layers", "tau_s_per_layer")
    return {k: pred[k] for k in keys}


def calibrated_notes(pred: dict, dtype: str, dtype_source: str, energy) -> list[str]:
    """What a reader of a calibrated estimate must know: the model, a transfer, an extrapolation, the dtype, and
    which held-out error applies to a model the calibration did not measure."""
    notes = [CALIBRATED_NOTE]
    if not pred["model_measured"]:
        by_model = pred["heldout_by_model_median_rel_error"]
        notes.append("Not a calibrated model: " + (
            f"the calibration's leave-one-model-out error ({by_model:.1%} median) is the uncertainty that applies, "
            "not its leave-one-shape-out error." if by_model is not None else
            "the calibration measured one model, so how well it carries to another is unmeasured (calibrate runs of "
            "two or more models to measure it)."))
    if dtype_source == "the calibration's":
        notes.append(f"dtype {dtype}: the calibration's (give --dtype to ask for another, if it has one).")
    if pred["transferred"]:
        notes.append(f"TRANSFERRED: {pred['label']}: the measured η and overhead applied to another accelerator's "
                     "datasheet peaks; an assumption, not a measurement of that accelerator.")
    if pred["extrapolated"]:
        notes.append("Extrapolated: this step's FLOPs, or the model's depth, lie outside the range the calibration "
                     "measured.")
    return notes + ([ENERGY_NOTE] if energy else [])
