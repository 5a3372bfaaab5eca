"""Fit how much of a multi-device step's communication is hidden behind compute: the overlap phi.

Input: a frame of loaded records with, per row, ``parallel`` ("none" | "ddp" | "fsdp" | "tp"), ``world_size``,
``nnodes``, ``valid``, ``step_time_s`` (the slowest rank's), ``model``, ``phase``, ``batch_size`` (per device for
ddp/fsdp, the batch all ranks share for tp), ``seq_len``, ``dtype``, ``hardware``, and the run's measured bus
bandwidths ``allreduce_busbw_bytes_per_s`` and ``allgather_busbw_bytes_per_s`` (nccl-tests definition, at the
largest size probed). Single-device rows (parallel "none", world size 1) are the baselines.

Model, for a multi-device row at K ranks:

    t_K = t_1 x w + (1 - phi) x c_K

t_1: the median single-device step of the same model, phase, batch, seq_len, dtype and hardware; w = 1 for
ddp/fsdp (each rank runs the per-device batch t_1 ran), 1/K for tp (the ranks share the batch t_1 ran); c_K the
communication time of the step: the bytes of costmodel.communication.step_bytes at the row's shape, at the
row's measured bus bandwidth (all-reduce at the all-reduce busbw; all-gather and reduce-scatter, which share
the (n-1)/n factor, at the all-gather busbw). phi is the least-squares solution of
(t_K - t_1 w) = (1 - phi) c_K over the rows of one (hardware, parallelism), clipped to [0, 1]; the unclipped
value is kept, so that a phi below 0 (steps slower than compute + all communication: latency, stragglers) or
above 1 (faster than compute alone) is visible. Rows the model cannot use (no baseline, no busbw, a model it
cannot read) are listed with the reason. ``comm_bytes_per_step``, the bytes the bench counted, is compared with
the model's where present (``bytes_ratio``): a check of the byte model, not an input.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmecon.calibration.document import CommunicationFit
from llmecon.costmodel import communication as cc
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError

REQUIRED = ("parallel", "world_size", "nnodes", "valid", "step_time_s", "model", "phase", "batch_size", "seq_len",
            "dtype", "hardware", "allreduce_busbw_bytes_per_s", "allgather_busbw_bytes_per_s")
BASELINE_KEY = ("model", "phase", "batch_size", "seq_len", "dtype", "hardware")
BUSBW_COLUMN = {"all_reduce": "allreduce_busbw_bytes_per_s", "all_gather": "allgather_busbw_bytes_per_s",
                "reduce_scatter": "allgather_busbw_bytes_per_s"}


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _point(row, t1: float, shapes: dict) -> dict:
    """One multi-device row's terms; raises UserError with the reason the row cannot be used."""
    k = int(row["world_size"])
    spec = row.get("model_spec")
    name = str(spec if isinstance(spec, str) and spec else row["model"])  # a preset, or the config the bench ran
    if name not in shapes:
        shapes[name] = load_model_shape(name)
    shape = shapes[name]
    parallel = cc.check_parallel(str(row["parallel"]))
    if parallel == "tp":
        cc.check_tp_degree(shape, k)
    by_op = cc.step_bytes(shape, parallel, batch_size=int(row["batch_size"]), seq_len=int(row["seq_len"]),
                          dtype=str(row["dtype"]), phase=str(row["phase"]))
    busbw = {}
    for op in by_op:
        bw = _number(row.get(BUSBW_COLUMN[op]))
        if bw is None:
            raise UserError(f"no measured {BUSBW_COLUMN[op]}")
        busbw[op] = bw
    c = cc.comm_time_s(by_op, k, busbw)
    w = 1.0 / k if parallel == "tp" else 1.0
    counted = _number(row.get("comm_bytes_per_step"))
    modeled = sum(by_op.values())
    return {"world_size": k, "nnodes": int(row["nnodes"]), "step_time_s": float(row["step_time_s"]),
            "t1_s": t1, "w": w, "comm_s": c, "comm_bytes_model": modeled,
            "bytes_ratio": counted / modeled if counted and modeled else None}


def _solve(points: list[dict]) -> tuple[float, float]:
    """(phi clipped to [0, 1], unclipped phi): least squares of (t_K - t_1 w) = (1 - phi) c_K."""
    c = np.array([p["comm_s"] for p in points])
    y = np.array([p["step_time_s"] - p["t1_s"] * p["w"] for p in points])
    if not np.any(c > 0):
        raise UserError("no communication time to fit an overlap against (all c_K are 0)")
    exposed = float(c @ y / (c @ c))
    raw = 1.0 - exposed
    return min(1.0, max(0.0, raw)), raw


def fit_overlap(frame: pd.DataFrame) -> dict:
    """{"fits": [CommunicationFit], "groups": [{hardware, parallel, overlap, points: [...], residuals}],
    "skipped": ["<row>: <reason>"]}; UserError if the frame lacks a column (named)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise UserError(f"the results lack column(s) {', '.join(missing)} needed for the communication fit")
    valid = frame[frame["valid"].fillna(False).astype(bool)]
    single = valid[(valid["parallel"].astype(object).fillna("none") == "none") & (valid["world_size"].fillna(1) == 1)]
    baselines = single.groupby(list(BASELINE_KEY))["step_time_s"].median().to_dict()
    multi = valid[valid["parallel"].isin(cc.PARALLELISMS) & (valid["world_size"] > 1)]
    shapes: dict = {}
    fits, groups, skipped = [], [], []
    for (hw, parallel), rows in sorted(multi.groupby(["hardware", "parallel"]), key=lambda kv: kv[0]):
        points = []
        for _, row in rows.iterrows():
            label = f"{row['model']} {parallel} K={int(row['world_size'])} b={row['batch_size']} s={row['seq_len']}"
            t1 = baselines.get(tuple(row[c] for c in BASELINE_KEY))
            if t1 is None:
                skipped.append(f"{label}: no single-device baseline of the same model, phase, batch, seq_len, "
                               "dtype and hardware")
                continue
            try:
                points.append(_point(row, float(t1), shapes))
            except UserError as exc:
                skipped.append(f"{label}: {exc}")
        if not points:
            continue
        try:
            phi, raw = _solve(points)
        except UserError as exc:
            skipped.append(f"{hw} {parallel}: {exc}")
            continue
        for p in points:
            predicted = p["t1_s"] * p["w"] + (1 - phi) * p["comm_s"]
            p["predicted_step_time_s"] = predicted
            p["rel_residual"] = predicted / p["step_time_s"] - 1
        errors = [abs(p["rel_residual"]) for p in points]
        groups.append({"hardware": hw, "parallel": parallel, "overlap": phi, "overlap_unclipped": raw,
                       "points": points})
        fits.append(CommunicationFit(hardware=str(hw), parallel=parallel, overlap=phi, overlap_unclipped=raw,
                                     n_points=len(points), world_sizes=sorted({p["world_size"] for p in points}),
                                     nnodes=sorted({p["nnodes"] for p in points}),
                                     median_rel_error=float(np.median(errors)), max_rel_error=float(max(errors))))
    return {"fits": fits, "groups": groups, "skipped": skipped}
