"""What bench puts into a record (the format itself is declared in records/schema.py).

``base_record`` builds a record with no measurement from the configuration and the cost model's shapes
alone (no torch): the config, the model block, the work the step does and how measured time is
extrapolated. The worker adds timing, memory and telemetry to it; the runner writes it as it is for a
failed, skipped or interrupted configuration.
"""

from __future__ import annotations

from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.flops import decode_flops, prefill_flops, train_step_flops
from llmecon.costmodel.memory import decode_bytes
from llmecon.records.schema import Knobs
from llmecon.vocab import CONVENTIONS, DATA_PARALLELS, GENERATE

# The numerator of model bandwidth utilisation (MBU): "achieved memory bandwidth = (total model parameter size + KV
# cache size) / TPOT", MBU = achieved / peak bandwidth (Agarwal et al., "LLM Inference Performance Engineering: Best
# Practices", Databricks blog, 2023). A lower bound of the real traffic: docs/measuring.md §8.5 measures what it
# leaves out (a dynamic cache's torch.cat copies, a compiled static cache's repeat_kv copies, activations, logits).
BYTES_DEFINITION = ("MBU numerator (Databricks 2023): weights read (active; untied input embedding as B rows) + one "
                    "read of the KV cache attended, per step, mean over the timed positions; leaves out the cache's "
                    "copies (torch.cat, repeat_kv), activations and logits (docs/measuring.md §8.5)")
GENERATE_BYTES_DEFINITION = ("the MBU numerator of the request's new_tokens - 1 decode steps, summed (weights read + "
                             "one read of the KV cache attended, per step); the prompt's prefill reads are not counted")
GENERATE_FLOPS_DEFINITION = ("the prompt's prefill (batch x seq_len, logits for the last position) + the "
                             "new_tokens - 1 decode steps, step k attending seq_len + k positions (k = 1 .. new_tokens - 1)")
EXTRAPOLATION_BASIS = {
    "prefill": "executed FLOPs per step, full model / built model",
    "train": "executed FLOPs per step, full model / built model",
    "decode": "bytes read per step (weights + KV cache), full model / built model",
    GENERATE: ("bytes read by the request's decode steps (weights + KV cache), full model / built model (the decode "
               "steps dominate a serving request's time; with a long prompt and few new tokens the prefill's FLOPs "
               "ratio, a few percent away, would fit better)"),
}
EXTRAPOLATION_ASSUMPTION = ("the layers left out run at the same time per unit of that work as the measured "
                            "model (layers, embedding and LM head alike)")


def work_block(shape: ModelShape, phase: str, batch_size: int, seq_len: int, new_tokens: int | None, dtype: str,
               activation_checkpointing: bool = False) -> dict:
    """FLOPs (every convention) and bytes per timed call of ``shape`` (costmodel formulas).

    decode: the mean over the steps at context positions seq_len .. seq_len+new_tokens-1.
    generate: one whole request: the prompt's prefill (prefill_flops) + its new_tokens - 1 decode steps
    (decode_flops: step k attends seq_len + k positions); tokens = batch x new_tokens generated tokens (the first,
    from the prefill, included); bytes = decode_bytes of those steps (the prefill's reads not counted).
    train with activation checkpointing: the model FLOPs (and MFU) are unchanged; the hardware FLOPs add
    one recomputed forward, a third of the executed forward + backward.
    """
    if phase == "prefill":
        flops = {c: prefill_flops(shape, batch_size, seq_len, c) for c in CONVENTIONS}
        return {"tokens_per_step": batch_size * seq_len, "flops_per_step": flops, "bytes_per_step": None}
    if phase == "decode":
        flops = {c: decode_flops(shape, batch_size, seq_len, new_tokens, c) / new_tokens for c in CONVENTIONS}
        bytes_step = decode_bytes(shape, dtype, batch_size, seq_len, new_tokens) / new_tokens
        return {"tokens_per_step": batch_size, "flops_per_step": flops, "bytes_per_step": bytes_step,
                "bytes_definition": BYTES_DEFINITION}
    if phase == GENERATE:
        steps = new_tokens - 1
        flops = {c: prefill_flops(shape, batch_size, seq_len, c) + decode_flops(shape, batch_size, seq_len, steps, c)
                 for c in CONVENTIONS}
        return {"tokens_per_step": batch_size * new_tokens, "flops_per_step": flops,
                "bytes_per_step": decode_bytes(shape, dtype, batch_size, seq_len, steps),
                "bytes_definition": GENERATE_BYTES_DEFINITION, "flops_definition": GENERATE_FLOPS_DEFINITION}
    flops = {c: train_step_flops(shape, batch_size, seq_len, c) for c in CONVENTIONS}
    out = {"tokens_per_step": batch_size * seq_len, "flops_per_step": flops, "bytes_per_step": None,
           "flops_definition": "forward + backward; the optimizer step is timed but not counted"}
    if activation_checkpointing:
        out["hardware_flops_per_step"] = flops["executed"] * 4.0 / 3.0
        out["hardware_flops_definition"] = "executed forward + backward + one recomputed forward (HFU numerator)"
    return out


def time_scale(phase: str, built_work: dict, full_work: dict) -> float:
    """How measured time is extrapolated from the model as built to the full model: the full/built ratio of
    the work that dominates the phase, executed FLOPs for prefill and train (compute-bound), bytes read for
    decode (memory-bound) and generate (its decode steps' bytes). Not ``layer_scale`` = L/k, which would count the
    embedding and LM head (run once per step whatever k is) L/k times: llama-3-8b, 8 of 32 layers, train b=1
    s=2048 gives 3.34, not 4."""
    if phase in ("decode", GENERATE):
        return full_work["bytes_per_step"] / built_work["bytes_per_step"]
    return full_work["flops_per_step"]["executed"] / built_work["flops_per_step"]["executed"]


def model_block(shape: ModelShape, full: ModelShape, phase: str, attn_implementation: str, weights: str,
                built_work: dict, full_work: dict, name: str | None = None) -> dict:
    """The record's ``model`` block, from the cost model's shapes alone."""
    return {
        "name": name or full.name,
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
        "time_scale": time_scale(phase, built_work, full_work),
        "extrapolation_basis": f"{EXTRAPOLATION_BASIS[phase]}; assumes {EXTRAPOLATION_ASSUMPTION}",
    }


def empty_timing(reason: str) -> dict:
    return {"rounds": [], "step_s": None, "spread": None,
            "validity": {"valid": False, "reasons": [reason], "warnings": []}}


def data_parallel_degree(cfg: dict) -> int:
    """How many ranks each take ``batch_size`` sequences of their own: the world for ddp and fsdp, else 1 (one
    device, or tensor parallelism, whose ranks share one batch)."""
    return int(cfg.get("world_size") or 1) if cfg.get("parallel") in DATA_PARALLELS else 1


def base_record(cfg: dict, shape: ModelShape, full: ModelShape, *, status: str, reasons: list[str],
                knobs: Knobs) -> dict:
    """A record for ``cfg`` with no measurement: config, model, work (as built, and the full model's in
    ``work.full_model``), status and reasons. With data parallelism the work is the whole job's: every rank's
    ``batch_size`` sequences."""
    config = {k: v for k, v in cfg.items() if k not in ("config_id", "name")}
    args = (cfg["phase"], cfg["batch_size"] * data_parallel_degree(cfg), cfg["seq_len"], cfg.get("new_tokens"), cfg["dtype"],
            bool(cfg.get("activation_checkpointing")))
    work = work_block(shape, *args)
    full_work = work_block(full, *args)
    model = model_block(shape, full, cfg["phase"], cfg["attn_implementation"], cfg.get("weights", "random"),
                        work, full_work, name=cfg.get("name"))
    work["full_model"] = {k: full_work[k] for k in ("flops_per_step", "bytes_per_step", "hardware_flops_per_step")
                          if k in full_work}
    return {
        "config_id": cfg["config_id"],
        "config": config,
        "model": model,
        "status": status,
        "reasons": list(reasons),
        "timing": empty_timing("; ".join(reasons) or status),
        "work": work,
        "memory": {"peak_bytes": None},
        "telemetry": {"energy_j": None, "mean_power_w": None, "reason": "not measured"},
        "measure": knobs.model_dump(),
    }
