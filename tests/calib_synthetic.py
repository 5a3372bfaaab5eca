"""Synthetic tidy frames (the columns of results.load_results) with a planted step-time model.

Used by test_calibrate.py and test_compare.py: time = F/(P eta_c) + B/(W eta_m) + t0, times a
log-normal noise factor of relative size `noise`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_PARAMS = 1.0e8              # a 100M-parameter model, fp16
WEIGHT_BYTES = 2.0 * N_PARAMS
KV_BYTES_PER_TOKEN = 2 * 12 * 768 * 2.0   # K and V, 12 layers, width 768, 2 bytes


def work(phase: str, batch: int, seq: int) -> tuple[float, float | None, int]:
    """(FLOPs per step, bytes per step or None, tokens per step) of the synthetic model."""
    attn = 4 * 12 * 768
    if phase == "decode":
        return 2 * N_PARAMS * batch + attn * seq * batch, WEIGHT_BYTES + KV_BYTES_PER_TOKEN * seq * batch, batch
    f = 2 * N_PARAMS * batch * seq + attn * seq * seq * batch / 2
    return (3 * f if phase == "train" else f), None, batch * seq


def planted_frame(*, eta_c=0.4, eta_m=0.7, t0=2e-3, peak=1e12, bw=1e11, noise=0.01, seed=0,
                  phases=("prefill", "decode", "train"),
                  batches=(1, 2, 4, 8, 16, 32), seqs=(128, 512, 2048), hardware_id=None, device_name="Synthetic CPU",
                  dtype="fp16", run_id="run-a", datasheet=False, model="synthetic-100m", iqr=0.02) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for phase in phases:
        for b in batches:
            for s in seqs:
                F, B, tokens = work(phase, b, s)
                t = F / (peak * eta_c) + (B / (bw * eta_m) if B is not None else 0.0) + t0
                t *= float(np.exp(rng.normal(0.0, noise))) if noise else 1.0
                rows.append({
                    "run_id": run_id, "config_id": f"{phase}-b{b}-s{s}", "model": model,
                    "hardware_id": hardware_id, "device_name": device_name, "dtype": dtype, "phase": phase,
                    "status": "ok", "reason": None, "batch_size": b, "seq_len": s,
                    "new_tokens": 16 if phase == "decode" else 0,
                    "step_time_s": t, "step_time_iqr_s": iqr * t, "n_samples": 10,
                    "tokens_per_step": tokens, "tokens_per_s": tokens / t,
                    **{f"flops_per_step_{c}": F for c in ("article", "non_embedding", "causal", "executed")},
                    "bytes_per_step": B,
                    "peak_flops_per_s": peak if datasheet else None, "ceiling_flops_per_s": None if datasheet else peak,
                    "peak_bytes_per_s": bw if datasheet else None, "ceiling_bytes_per_s": None if datasheet else bw,
                    "mfu_executed": F / t / peak if datasheet else None,
                    "mfu_executed_vs_ceiling": F / t / peak,
                    "valid": True,
                })
    return pd.DataFrame(rows)


def write_planted_run(out_dir, *, slowdown: float = 1.0, jitter: float = 0.01, seed: int = 0, n_samples: int = 9,
                      failed: tuple = (), **kw):
    """A run folder on disk (via results.new_run / write_record) whose records follow the planted model.

    Each record has n_samples raw samples spread ±jitter around the planted time x slowdown; the
    configurations listed in `failed` (config ids) are written with status "oom". Returns the run folder."""
    from llmecon.results import make_config_id, new_run, write_record

    frame = planted_frame(noise=0.0, **kw)
    hardware_id = kw.get("hardware_id")     # a sheet id: the loader then takes the datasheet peaks
    rng = np.random.default_rng(seed)
    peak = kw.get("peak", 1e12)
    bw = kw.get("bw", 1e11)
    dtype = str(frame["dtype"].iloc[0])
    run = new_run(out_dir, {
        "device": {"kind": "cuda" if hardware_id else "cpu", "name": str(frame["device_name"].iloc[0]),
                   "hardware_id": hardware_id, "count": 1,
                   "hardware_match_reason": "synthetic" if hardware_id else "synthetic device, not in the sheet"},
        "ceilings": {dtype: {"gemm_flops_per_s": peak, "gemm_shape": [1, 1, 1], "copy_bytes_per_s": bw}},
        "config": {"synthetic": True},
        "environment": {"python": "3.11", "torch": "synthetic", "transformers": "synthetic"},
    })
    for r in frame.itertuples():
        config = {"model": r.model, "phase": r.phase, "batch_size": int(r.batch_size), "seq_len": int(r.seq_len),
                  "new_tokens": int(r.new_tokens) if r.phase == "decode" else None, "dtype": dtype, "device": "cpu",
                  "attn_implementation": "sdpa", "compile": False, "static_cache": False, "layers": None,
                  "activation_checkpointing": False}
        config_id = make_config_id(config)
        t = r.step_time_s * slowdown
        samples = [float(t * (1 + jitter * x)) for x in rng.uniform(-1, 1, n_samples)]
        status = "oom" if r.config_id in failed else "ok"
        write_record(run, {
            "config_id": config_id, "config": config,
            "model": {"name": r.model, "layer_scale": 1.0},
            "status": status, "reason": "out of memory" if status == "oom" else None,
            "timing": {"samples_s": samples if status == "ok" else [], "first_call_s": 2 * t, "warmup_iters": 2,
                       "n_samples": n_samples, "total_s": sum(samples),
                       "validity": {"valid": status == "ok", "reasons": [], "warnings": []}},
            "work": {"tokens_per_step": int(r.tokens_per_step),
                     "flops_per_step": {c: float(getattr(r, f"flops_per_step_{c}"))
                                        for c in ("article", "non_embedding", "causal", "executed")},
                     "bytes_per_step": None if pd.isna(r.bytes_per_step) else float(r.bytes_per_step)},
            "memory": {"peak_bytes": 1e6}, "telemetry": {},
        })
    return run
