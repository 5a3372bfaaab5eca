"""What a training run costs: `estimate_training`, the library behind `llmecon estimate training` (it
returns the dict that ``--json`` prints).

Flat (``mfu``): accelerator-hours = FLOPs per token x tokens / (dense peak x MFU) / 3,600; $ = hours x
$/hour; days = hours / K / 24. Calibrated (``calibration``): the step of batch x seq_len tokens per
accelerator is predicted, and the run is that many steps (FLOPs counted in the calibration's convention, so
that they and the effective MFU agree). With K > 1 the step of ``batch_size`` x ``seq_len`` per accelerator
(per K for ``--parallel tp``) gets a communication term (estimate.scaling, costmodel.communication): the MFU per
device at K is the one-device MFU x compute / (compute + exposed communication), and it prices the run.
"""

from __future__ import annotations

from llmecon.calibration.apply import predict_workload, priceable_mfu
from llmecon.calibration.document import Calibration
from llmecon.costmodel import estimate as formulas
from llmecon.costmodel.flops import train_step_flops
from llmecon.costmodel.hardware import get_accelerator
from llmecon.costmodel.memory import training_memory_bytes
from llmecon.errors import UserError, require_positive
from llmecon.estimate import inputs
from llmecon.estimate.inference import ENERGY_NOTE, calibrated_notes, heldout_fields
from llmecon.estimate.scaling import DEFAULT_PARALLEL, communication_term
from llmecon.units import parse_count, parse_whole

DEFAULT_SEQ_LEN = 2048
DEFAULT_BATCH_SIZE = 8
DEFAULT_BYTES_PER_PARAM = 20
DEFAULT_NUM_ACCELERATORS = 1
SCALING_NOTE = ("K > 1: the step is compute plus the exposed communication of --parallel at the link bandwidth "
                "(docs/data-sources.md §14); stragglers, latency and the optimizer step are not modelled.")


def estimate_training(model, *, tokens=None, hardware: str | None = None, price: str | None = None,
                      usd_per_hour=None, mfu=None, dtype: str | None = None, convention: str | None = None,
                      usd_per_kwh=None, pue=inputs.DEFAULT_PUE, tdp_w=None, calibration=None, transfer: bool = False,
                      num_accelerators=DEFAULT_NUM_ACCELERATORS, seq_len=DEFAULT_SEQ_LEN,
                      bytes_per_param=DEFAULT_BYTES_PER_PARAM, batch_size=DEFAULT_BATCH_SIZE,
                      engine: str | None = None, parallel: str = DEFAULT_PARALLEL, busbw=None) -> dict:
    """Accelerator-hours, $, wall-clock days and the fewest accelerators that hold the training state, as
    `llmecon estimate training --json`.

    The article's GPT-3 run on TPU v4 at 46.2 % MFU ($1.4M):

    >>> r = estimate_training("gpt3-175b", tokens="300B", hardware="tpu-v4", usd_per_hour=2.03, mfu=0.462)
    >>> round(r["usd_total"] / 1e6, 1)
    1.4

    ``tokens`` defaults to the preset's published count. With ``calibration`` the step time is predicted at
    ``batch_size`` x ``seq_len`` tokens per accelerator instead of a flat utilization; with neither ``mfu`` nor
    ``calibration``, by the published reference calibration for the accelerator (``engine`` picks whose points).
    With ``num_accelerators`` K > 1, ``parallel`` (ddp, fsdp, tp) sets the communication of a step and ``busbw``
    (GB/s, a measured nccl-tests bus bandwidth) its bandwidth, else the sheet's link figures (estimate.scaling).
    """
    shape = inputs.model_shape(model)
    calib = inputs.calibration(calibration)
    inputs.check_basis(calib, mfu, transfer, hardware, engine)
    ref = inputs.published(hardware, "train", dtype, engine) if calib is None and mfu is None else None
    given_dtype = dtype
    if ref is not None:
        calib, calibration, transfer, dtype = ref.calibration, ref.calibration, ref.transferred, ref.dtype
    conv = inputs.convention(convention, calib)
    if tokens is None:
        if not shape.training_tokens:
            raise UserError(f"--tokens is required: {shape.name} has no published training token count")
        n_tokens, tokens_source = float(shape.training_tokens), "preset"
    else:
        n_tokens, tokens_source = parse_count("--tokens", tokens), "--tokens"
    k = parse_whole("--num-accelerators", num_accelerators)
    length = parse_whole("--seq-len", seq_len)
    batch = parse_whole("--batch-size", batch_size)
    state = training_memory_bytes(shape, bytes_per_param=require_positive("--bytes-per-param", bytes_per_param))
    common = {"model": shape.name, "params_total": shape.params_total, "tokens": n_tokens,
              "tokens_source": tokens_source, "seq_len": length, "num_accelerators": k,
              "state_bytes": float(state["total_bytes"]), "bytes_per_param": state["bytes_per_param"]}
    if calib is None:
        accelerator = get_accelerator(hardware)
        dtype, dtype_source = inputs.dtype(dtype, None, accelerator.id, "train", False)
        peak = inputs.peak(accelerator, dtype)
        usd_hour, price_info = inputs.price(price, usd_per_hour, accelerator, accelerator.id)
        utilization = inputs.flat_mfu(mfu, "training")
        flops_per_token = float(train_step_flops(shape, 1, length, conv)) / length
        flops_total = flops_per_token * n_tokens
        out = {"basis": "flat", **common, "hardware_id": accelerator.id, "dtype": dtype, "dtype_source": dtype_source,
               "convention": conv, "flops_per_token": flops_per_token, "flops_total": flops_total,
               "peak_flops_per_s": peak, "mfu": utilization, "mfu_source": "flat --mfu"}
        notes = ["The state bound ignores activations.", *inputs.beyond_context(shape, length, "--seq-len")]
        one_step_s = train_step_flops(shape, batch, length, conv) / (peak * utilization)
    else:
        hardware, accelerator = inputs.calibrated_target(calib, hardware, "train")
        dtype, dtype_source = inputs.dtype(dtype, calib, hardware, "train", transfer)
        usd_hour, price_info = inputs.price(price, usd_per_hour, accelerator, hardware)
        pred = predict_workload(calib, shape, "train", batch, length, hardware=hardware, dtype=dtype,
                                transfer=transfer)
        steps = n_tokens / (batch * length)
        flops_total = pred["flops_per_step"] * steps
        utilization, peak = priceable_mfu(pred), pred["peak_flops_per_s"]
        out = {"basis": "calibrated", **common, "hardware_id": hardware, "dtype": dtype, "dtype_source": dtype_source,
               "convention": conv, "batch_size": batch, "flops_per_step": pred["flops_per_step"], "steps": steps,
               "flops_total": flops_total, "peak_flops_per_s": peak, "peak_source": pred["peak_source"],
               "mfu": utilization, "mfu_source": pred["label"], "regime": pred["regime"],
               "step_time_s": pred["step_time_s"], "terms_s": pred["terms_s"], "transferred": pred["transferred"],
               "extrapolated": pred["extrapolated"], **heldout_fields(pred),
               "calibration": "(in memory)" if isinstance(calibration, Calibration) else str(calibration)}
        notes = list(calibrated_notes(pred, dtype, dtype_source, None))
        one_step_s = pred["step_time_s"]
        if ref is not None:
            fields = inputs.published_fields(ref, given_dtype, notes)
            notes = fields.pop("notes")
            out |= fields
    comm, comm_notes = communication_term(shape, parallel, k, batch_size=batch, seq_len=length, dtype=dtype,
                                          one_device_step_s=one_step_s, mfu_one_device=utilization,
                                          accelerator=accelerator, hardware=out["hardware_id"], calibration=calib,
                                          busbw=busbw)
    notes += comm_notes + ([SCALING_NOTE] if comm else [])
    out |= {"parallel": parallel, "communication": comm}
    if comm:
        out |= {"mfu_one_device": utilization, "batch_size": batch}
        utilization = comm["mfu_per_device"]
        out["mfu"] = utilization
    memory = accelerator.memory_bytes if accelerator is not None else None
    result = formulas.training_cost(flops_total, peak, utilization, usd_hour, num_accelerators=k,
                                    state_bytes=common["state_bytes"] if memory else None, memory_bytes=memory)
    energy = inputs.energy(result["accelerator_hours"], accelerator, out["hardware_id"], usd_per_kwh, pue, tdp_w)
    need = result["min_accelerators_for_state"]
    if need is not None and k < need:
        notes.append(f"{k:,} accelerator(s) cannot hold the training state: at least {need:,} are needed.")
    notes += [ENERGY_NOTE] if energy else []
    return {**out, "usd_per_accelerator_hour": usd_hour, "price": price_info, "memory_bytes_per_accelerator": memory,
            **result, **inputs.energy_fields(energy), "notes": notes}
