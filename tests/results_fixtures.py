"""Hand-made runs and records for the results tests (no torch: every number is planted)."""

from llmecon.costmodel.flops import CONVENTIONS
from llmecon.results import new_run, write_record

ENV = {"python": "3.11", "torch": None, "git_sha": None, "git_dirty": None, "unavailable": {"torch": "fixture"}}


def run_meta(hardware_id="h200", ceilings=None, **device):
    """run.json contents: an H200 by default, with a measured GEMM and copy ceiling for bf16."""
    return {
        "environment": ENV,
        "device": {"kind": "cuda", "name": "NVIDIA H200", "hardware_id": hardware_id,
                   "hardware_match_reason": None if hardware_id else "no sheet entry for 'Foo X1'", **device},
        "ceilings": ceilings if ceilings is not None else
        {"bf16": {"gemm_flops_per_s": 8e14, "gemm_shape": [8192, 8192, 8192], "copy_bytes_per_s": 4e12}},
        "config": {"models": ["tiny"]},
    }  # fmt: skip


def make_record(config_id="prefill-tiny-b1-s512", *, phase="prefill", dtype="bf16", samples=(0.01,) * 10,
                flops=1e12, tokens=512, bytes_step=None, status="ok", reason=None, layer_scale=1.0,
                energy_j=None, batch_size=1, seq_len=512, model="tiny", validity=None, full_model=None,
                time_scale=None):  # fmt: skip
    """One record as BENCH writes it: flops_per_step is the same for every convention unless a dict.

    Without full_model it is a record from before work.full_model (time scaled by layer_scale);
    with it, full_model is {"flops_per_step": number or dict, "bytes_per_step": ...} and time_scale
    goes into the model block."""
    rec = {
        "config_id": config_id,
        "config": {"model": model, "phase": phase, "batch_size": batch_size, "seq_len": seq_len,
                   "new_tokens": 16 if phase == "decode" else None, "dtype": dtype, "device": "cuda",
                   "attn_implementation": "sdpa", "compile": False, "static_cache": False, "layers": None,
                   "activation_checkpointing": False},
        "model": {"name": model, "layer_scale": layer_scale, "layers_built": 2, "num_hidden_layers": 2},
        "status": status,
        "reason": reason,
        "timing": {"samples_s": list(samples), "first_call_s": 0.5, "warmup_iters": 3, "n_samples": len(samples),
                   "total_s": sum(s for s in samples if s is not None),
                   "validity": validity or {"valid": True, "reasons": [], "warnings": []}},
        "work": {"tokens_per_step": tokens,
                 "flops_per_step": flops if isinstance(flops, dict) else {c: flops for c in CONVENTIONS},
                 "bytes_per_step": bytes_step},
        "memory": {"peak_bytes": 2.0e9},
        "telemetry": {"energy_j": energy_j, "mean_power_w": 500.0 if energy_j else None},
    }  # fmt: skip
    if full_model is not None:
        f = full_model["flops_per_step"]
        rec["work"]["full_model"] = {"flops_per_step": f if isinstance(f, dict) else {c: f for c in CONVENTIONS},
                                     "bytes_per_step": full_model.get("bytes_per_step")}
    if time_scale is not None:
        rec["model"]["time_scale"] = time_scale
    return rec


def make_run(out_dir, records=(), **meta):
    """A run folder under out_dir holding the given records; returns its path."""
    run_dir = new_run(out_dir, run_meta(**meta))
    for rec in records:
        write_record(run_dir, rec)
    return run_dir
