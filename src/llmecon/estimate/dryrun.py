"""`llmecon bench --dry-run`: the plan of a sweep, predicted, with nothing built or run.

For each configuration of `measure.spec.plan`: the memory model's peak by part (costmodel.footprint, for the
model as built), whether it fits the target's usable memory (measure.memcheck, the same verdict a real run
acts on), and a predicted step time and tokens/s:

- from a calibration (``calibration``) when it has a fit for the target, the configuration's dtype and phase
  (calibration.apply.predict_detail, on the FLOPs and bytes the run's record would carry: measure.record's
  work_block for the full model, as bench reports it when --layers extrapolates);
- else from the datasheet roofline of the target's hardware-sheet entry, max(F / peak[dtype], B / bandwidth)
  with F the executed FLOPs and B the bytes a decode step reads (prefill and train: the compute term
  alone), an ideal that no step reaches: a lower bound on the time, labelled so;
- else none (a CPU has no datasheet peak), with the reason.

The target is ``hardware`` (a hardware-sheet id: its memory and peaks, on a CUDA device) or, without it,
this machine's device (measure.memcheck.local_device: CPU RAM, or a CUDA device's total memory).
"""

from __future__ import annotations

from llmecon.calibration.apply import predict_detail
from llmecon.calibration.document import Calibration
from llmecon.costmodel.footprint import HEADROOM_FRACTION, usable_bytes
from llmecon.costmodel.hardware import Accelerator, get_accelerator, match_device_name
from llmecon.errors import UserError
from llmecon.measure.memcheck import config_footprint, local_device, oom_reason
from llmecon.measure.models import built_shape
from llmecon.measure.record import work_block
from llmecon.measure.spec import BenchSpec, plan

MEMORY_DOC = "docs/memory.md"


def resolve_target(device: str = "auto", hardware: str | None = None) -> dict:
    """What a dry run plans against: {"device", "kind", "name", "hardware" (the name calibration fits are
    looked up by), "accelerator" (hardware-sheet entry or None), "memory_bytes", "memory_source"}."""
    device = (device or "auto").strip().lower()
    if hardware is not None:
        acc = get_accelerator(hardware)
        if device == "cpu":
            raise UserError(f"--hardware {hardware} is a GPU on the hardware sheet; --device cpu plans for this "
                            "machine's CPU: drop one of them")
        if not (device in ("auto", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
            raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
        return {"device": "cuda:0" if device in ("auto", "cuda") else device, "kind": "cuda", "name": acc.name,
                "hardware": acc.id, "accelerator": acc, "memory_bytes": acc.memory_bytes,
                "memory_source": f"hardware sheet: {acc.id}, {acc.memory_bytes / 1e9:g} GB"}
    local = local_device(device)
    acc = match_device_name(local["name"])[0] if local["kind"] == "cuda" else None
    return {**local, "hardware": acc.id if acc is not None else local["name"], "accelerator": acc}


def _roofline(acc: Accelerator | None, kind: str, dtype: str, work: dict) -> tuple[float | None, str]:
    if acc is None:
        why = "a CPU has no datasheet peak" if kind == "cpu" else "this device is not on the hardware sheet"
        return None, f"none: {why} (a calibration measured on it gives one)"
    peak = acc.peak(dtype)
    if peak is None:
        return None, f"none: {acc.id} has no dense {dtype} peak on the hardware sheet (a calibration gives one)"
    flops = work.get("hardware_flops_per_step") or work["flops_per_step"]["executed"]
    t = flops / peak
    if work["bytes_per_step"]:
        t = max(t, work["bytes_per_step"] / acc.memory_bytes_per_s)
    terms = "F / peak" + (", B / bandwidth" if work["bytes_per_step"] else "")
    return t, (f"datasheet roofline: max({terms}) on {acc.id} at {peak / 1e12:g} TFLOP/s {dtype}, "
               f"{acc.memory_bytes_per_s / 1e12:g} TB/s (an ideal, a lower bound on the time)")


def _predicted_time(cfg: dict, target: dict, calib: Calibration | None) -> dict:
    shape, full = built_shape(cfg["model"], cfg.get("layers"))
    work = work_block(full, cfg["phase"], cfg["batch_size"], cfg["seq_len"], cfg.get("new_tokens"), cfg["dtype"],
                      bool(cfg.get("activation_checkpointing")))
    t, source, basis, note = None, None, None, None
    if calib is not None and not any(f.matches(target["hardware"]) for f in calib.fits):
        note = f"calibration not used: it was measured on {', '.join(calib.measured_on())}, not on {target['hardware']}"
    elif calib is not None:
        try:
            d = predict_detail(calib, target["hardware"], cfg["dtype"], cfg["phase"],
                               work["flops_per_step"][calib.flop_convention], work["bytes_per_step"])
            t, basis = d["step_time_s"], "calibration"
            source = d["label"] + (" (extrapolated beyond the measured range)" if d["extrapolated"] else "")
        except UserError as exc:
            note = f"calibration not used: {exc}"
    if t is None:
        t, source = _roofline(target["accelerator"], target["kind"], cfg["dtype"], work)
        basis = "roofline" if t is not None else None
    tokens = work["tokens_per_step"]
    return {"step_time_s": t, "tokens_per_step": tokens, "tokens_per_s": tokens / t if t else None,
            "time_basis": basis, "time_source": source, "time_note": note}


def dry_run(spec: BenchSpec, target: dict, calibration=None) -> dict:
    """The plan of ``spec`` on ``target`` (`resolve_target`): one row per configuration with its memory
    (parts_bytes, total_bytes, peak_at), fits, action ("run" or "skip", as a real run would decide),
    reason, and the predicted step time, tokens/s and where they come from."""
    calib = calibration if calibration is None or isinstance(calibration, Calibration) else Calibration.load(calibration)
    memory = target["memory_bytes"]
    rows = []
    for cfg in plan(spec, target["device"], target["kind"]):
        fp = config_footprint(cfg)
        reason = oom_reason(fp["total_bytes"], memory) if memory else None
        fits = None if not memory else reason is None
        action = "skip" if (fits is False and spec.memory_check) else "run"
        rows.append({"config_id": cfg["config_id"], "model": cfg["model"], "name": cfg["name"],
                     "phase": cfg["phase"], "batch_size": cfg["batch_size"], "seq_len": cfg["seq_len"],
                     "new_tokens": cfg.get("new_tokens"), "dtype": cfg["dtype"], "layers": cfg.get("layers"),
                     "memory": fp, "fits": fits, "action": action, "reason": reason,
                     **_predicted_time(cfg, target, calib)})
    public = {k: v for k, v in target.items() if k != "accelerator"}
    return {"target": {**public, "usable_bytes": usable_bytes(memory) if memory else None,
                       "headroom_fraction": HEADROOM_FRACTION},
            "memory_check": spec.memory_check, "calibration": None if calib is None else calib.summary(),
            "formulas": MEMORY_DOC, "rows": rows}
