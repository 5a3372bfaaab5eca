"""The bench worker: runs configurations and reports one record per configuration as it finishes.

`python -m llmecon.bench.worker` reads one job (JSON) on stdin: the device, the timing knobs, the
thread count and a list of configurations that share a model. It builds the model once per kind
(inference, or fp32-master training), runs the configurations in order and prints one JSON line per
event on its protocol channel (its original stdout; anything else written to stdout goes to stderr,
which the parent keeps in <run>/logs/):

    {"event": "ready", "pid": ...}                  torch and transformers are imported
    {"event": "start", "config_id": ...}            before a configuration starts (the timeout clock)
    {"event": "record", "record": {...}}            the finished record (the parent writes it to disk)

After an OOM or any other failure it exits, so the next configuration starts in a fresh process
(see runner.py). It also exits by itself if its parent dies (a watchdog compares getppid()).
The parent is the only writer of records; this process never touches the run folder.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable

from llmecon.costmodel.flops import CONVENTIONS, decode_flops, prefill_flops, train_step_flops
from llmecon.costmodel.memory import decode_bytes

EXIT_AFTER_FAILURE = 3


def work_block(shape, phase: str, batch_size: int, seq_len: int, new_tokens: int | None, dtype: str,
               activation_checkpointing: bool = False) -> dict:
    """FLOPs (4 conventions) and bytes per timed call, for the model AS BUILT (costmodel formulas).

    decode: the mean over the steps at context positions seq_len .. seq_len+new_tokens-1.
    train with activation checkpointing: the model FLOPs (and MFU) are unchanged; the hardware
    FLOPs add one recomputed forward, a third of the executed forward + backward.
    """
    if phase == "prefill":
        flops = {c: prefill_flops(shape, batch_size, seq_len, c) for c in CONVENTIONS}
        return {"tokens_per_step": batch_size * seq_len, "flops_per_step": flops, "bytes_per_step": None}
    if phase == "decode":
        flops = {c: decode_flops(shape, batch_size, seq_len, new_tokens, c) / new_tokens for c in CONVENTIONS}
        bytes_step = decode_bytes(shape, dtype, batch_size, seq_len, new_tokens) / new_tokens
        return {"tokens_per_step": batch_size, "flops_per_step": flops, "bytes_per_step": bytes_step,
                "bytes_definition": "weights (active) + KV cache read per step, mean over the timed positions"}
    flops = {c: train_step_flops(shape, batch_size, seq_len, c) for c in CONVENTIONS}
    out = {"tokens_per_step": batch_size * seq_len, "flops_per_step": flops, "bytes_per_step": None,
           "flops_definition": "forward + backward; the optimizer step is timed but not counted"}
    if activation_checkpointing:
        out["hardware_flops_per_step"] = flops["executed"] * 4.0 / 3.0
        out["hardware_flops_definition"] = "executed forward + backward + one recomputed forward (HFU numerator)"
    return out


def model_block(shape, full, attn_implementation: str, weights: str) -> dict:
    """The record's `model` block, from the cost model's shapes alone (no torch needed)."""
    return {
        "name": full.name,
        "model_type": full.model_type,
        "params_total": full.params_total,
        "params_non_embedding": full.params_non_embedding,
        "params_active": full.params_active,
        "num_hidden_layers": full.num_hidden_layers,
        "layers_built": shape.num_hidden_layers,
        "layer_scale": full.num_hidden_layers / shape.num_hidden_layers,
        "params_built": shape.params_total,
        "weights": weights,
        "attn_implementation": attn_implementation,
        "extrapolated": shape.num_hidden_layers != full.num_hidden_layers,
    }


EXTRAPOLATION_BASIS = {
    "prefill": "executed FLOPs per step, full model / built model",
    "train": "executed FLOPs per step, full model / built model",
    "decode": "bytes read per step (weights + KV cache), full model / built model",
}
EXTRAPOLATION_ASSUMPTION = ("the layers left out run at the same time per unit of that work as the measured "
                            "model (layers, embedding and LM head alike)")


def extrapolation(phase: str, built_work: dict, full_work: dict) -> dict:
    """How measured time is extrapolated from the model as built to the full model.

    ``time_scale`` is the ratio of full-model to built-model work in the term that dominates the
    phase: executed FLOPs for prefill and train (compute-bound), bytes read for decode
    (memory-bound). The assumption: time per unit of that work is the same for the layers that were
    not built as for what ran (k layers plus the embedding and LM head, which run once per step
    whatever k is). That is why it is not ``layer_scale`` = L/k, which would count the embedding and
    LM head L/k times (llama-3-8b, 8 of 32 layers, train b=1 s=2048: 3.34, not 4). 1.0 when the whole model
    was built.
    """
    if phase == "decode":
        built, full = built_work["bytes_per_step"], full_work["bytes_per_step"]
    else:
        built, full = built_work["flops_per_step"]["executed"], full_work["flops_per_step"]["executed"]
    return {"time_scale": full / built, "extrapolation_basis": f"{EXTRAPOLATION_BASIS[phase]}; assumes "
                                                               f"{EXTRAPOLATION_ASSUMPTION}"}


def empty_timing(reason: str) -> dict:
    return {"samples_s": [], "n_samples": 0, "first_call_s": None, "warmup_iters": 0, "total_s": None,
            "validity": {"valid": False, "reasons": [reason], "warnings": []}}


def base_record(cfg: dict, shape, full, *, status: str, reason: str | None, knobs: dict) -> dict:
    """A record for `cfg` with no measurement (the parent's failure records start from this too).

    ``work`` holds the cost model's counts for the model AS BUILT and, in ``work.full_model``, the
    same counts for the full shape (exact, from the cost model: nothing there is extrapolated);
    ``model.time_scale`` and ``model.extrapolation_basis`` (see `extrapolation`) say how the loader
    extrapolates the measured time. ``model.layer_scale`` (L/k) is kept for information only.
    """
    config = {k: v for k, v in cfg.items() if k != "config_id"}
    args = (cfg["phase"], cfg["batch_size"], cfg["seq_len"], cfg.get("new_tokens"), cfg["dtype"],
            bool(cfg.get("activation_checkpointing")))
    work = work_block(shape, *args)
    full_work = work_block(full, *args)
    model = model_block(shape, full, cfg["attn_implementation"], cfg.get("weights", "random"))
    model.update(extrapolation(cfg["phase"], work, full_work))
    work["full_model"] = {k: full_work[k] for k in ("flops_per_step", "bytes_per_step", "hardware_flops_per_step")
                          if k in full_work}
    rec = {
        "config_id": cfg["config_id"],
        "config": config,
        "model": model,
        "status": status,
        "reason": reason,
        "timing": empty_timing(reason or status),
        "work": work,
        "memory": {"peak_bytes": None},
        "telemetry": {"energy_j": None, "mean_power_w": None, "reason": "not measured"},
        "measure": dict(knobs),
    }
    return rec


def _is_oom(exc: BaseException) -> bool:
    import torch

    types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t)
    return isinstance(exc, types) or "out of memory" in str(exc).lower() and isinstance(exc, RuntimeError)


def _cleanup(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def execute(job: dict, emit: Callable[[dict], None]) -> int:
    """Run job["configs"] in order, emitting events; return 0, or EXIT_AFTER_FAILURE after a failure."""
    import torch

    from llmecon.bench.models import build_model, built_shape
    from llmecon.bench.workloads import run_workload

    import transformers  # noqa: F401  (imported before the first "start": not charged to its timeout)
    from transformers import AutoModelForCausalLM, DynamicCache  # noqa: F401

    device, knobs = job["device"], job["timing"]
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    emit({"event": "ready", "pid": os.getpid()})
    models: dict[Any, Any] = {}
    for cfg in job["configs"]:
        emit({"event": "start", "config_id": cfg["config_id"]})
        shape, full = built_shape(cfg["model"], cfg.get("layers"))
        t0 = time.perf_counter()
        load_before = _loadavg()
        try:
            key = (cfg["model"], cfg["phase"] == "train")
            if key not in models:
                models.clear()
                _cleanup(device)
                models[key] = build_model(
                    cfg["model"], device=device, dtype=cfg["dtype"], layers=cfg.get("layers"),
                    attn_implementation=cfg["attn_implementation"], weights=cfg.get("weights", "random"),
                    train=cfg["phase"] == "train",
                )
            built = models[key]
            out = run_workload(
                built, cfg["phase"], batch_size=cfg["batch_size"], seq_len=cfg["seq_len"],
                new_tokens=cfg.get("new_tokens") or 0, dtype=cfg["dtype"], device=device,
                compile=cfg.get("compile", False), static_cache=cfg.get("static_cache", False),
                activation_checkpointing=cfg.get("activation_checkpointing", False), timing=knobs,
            )
        except Exception as exc:  # every failure becomes a status; the traceback is kept
            oom = _is_oom(exc)
            status = "oom" if oom else "error"
            rec = base_record(cfg, shape, full, status=status, reason=f"{type(exc).__name__}: {exc}"[:500], knobs=knobs)
            rec["error"] = {"type": type(exc).__name__, "message": str(exc)[:2000],
                            "traceback": traceback.format_exc()[-4000:]}
            rec["timing"]["total_s"] = time.perf_counter() - t0
            models.clear()
            out = None
            _cleanup(device)
            emit({"event": "record", "record": rec})
            return EXIT_AFTER_FAILURE
        timing = out["timing"]
        valid = timing["validity"]["valid"]
        rec = base_record(cfg, shape, full, status="ok" if valid else "invalid",
                          reason=None if valid else "; ".join(timing["validity"]["reasons"]), knobs=knobs)
        rec["timing"] = timing
        rec["memory"] = out["memory"]
        rec["telemetry"] = out["telemetry"]
        rec["torch_threads"] = torch.get_num_threads()
        rec["host"] = {"loadavg_1m_before": load_before, "loadavg_1m_after": _loadavg(), "cpu_count": os.cpu_count()}
        rec["wall_s"] = time.perf_counter() - t0
        emit({"event": "record", "record": rec})
    return 0


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints (libraries) go to the log, never into the protocol
    sys.stdout = sys.stderr
    job = json.load(sys.stdin)
    threading.Thread(target=_watch_parent, args=(job.get("parent_pid") or os.getppid(),), daemon=True).start()

    def emit(event: dict) -> None:
        proto.write(json.dumps(event, allow_nan=True) + "\n")  # parent sanitises non-finite values
        proto.flush()

    code = execute(job, emit)
    proto.close()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown (seconds with CUDA); everything is flushed


if __name__ == "__main__":
    main()
