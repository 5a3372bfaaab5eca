"""Compare two runs (or folders of runs) configuration by configuration, and decide on statistics: the CI check.

Rows are matched on (model, phase, dtype, batch_size, seq_len, new_tokens, hardware), hardware being the sheet
id or, off the sheet, the device name; also on how the step ran (attention implementation, compile, static
cache, activation checkpointing, --layers).

**The decision** (docs/measuring.md §4.1). Each side contributes the means of its rounds (every run of a
folder of runs adds its rounds). The ratio t_new / t_base of step time is estimated by the Hodges-Lehmann
shift of the log round means (each round's mean step time), with its distribution-free Mann-Whitney interval at ``confidence``
(``stats.hodges_lehmann_shift``; Hollander, Wolfe & Chicken 2014, §4.3). With ``max_drop`` = d, a throughput
drop larger than d is a time ratio above 1 / (1 - d); the band of "no change" is [1 - d, 1 / (1 - d)]
(symmetric in log). Verdicts:

- ``regression``: the whole interval lies above 1 / (1 - d) — slower by more than the threshold, surely;
- ``improvement``: the whole interval lies below 1 - d;
- ``no change``: the whole interval lies inside the band;
- ``inconclusive``: the interval straddles a boundary, or there are too few rounds for an interval; the row
  says about how many rounds per side would decide it (interval widths shrink as 1/sqrt(rounds)).

A configuration valid in BASE that failed in NEW (oom, error, invalid...) is a regression too; one missing
from NEW is reported, not failed.

**Work that noise cannot move.** Executed FLOPs and bytes per step, and the operator calls per step (ATen
operators, CUDA kernels where counted), are compared exactly: any difference is reported as ``work_changed``
whatever the timings say (a different attention kernel, an added copy).

**Normalised to the machine** (``normalize="ceiling"``): each round's step time is multiplied by its run's own
measured ceiling (GEMM FLOP/s for prefill and train, copy bandwidth for decode) before the comparison, so the
test is on efficiency, not speed: for CI runners that differ from run to run. It adds the ceiling's own noise
(one measurement per run) and cannot tell a slower model from a machine whose ceiling moved differently.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmecon.errors import UserError
from llmecon.records.load import load_results
from llmecon.stats import Z_TWO_SIDED, hodges_lehmann_shift, shift_ci_ranks

KEY = ("model", "phase", "dtype", "batch_size", "seq_len", "new_tokens", "hardware")
# how the step ran: matched too when the frames have them (a compiled run is not a slower eager one)
SETTINGS = ("attn_implementation", "compile", "static_cache", "activation_checkpointing", "layer_scale")
DEFAULT_MAX_DROP = 0.05
DEFAULT_CONFIDENCE = 0.95
NORMALIZE = (None, "ceiling")
WORK_COLUMNS = ("flops_per_step_executed", "bytes_per_step", "aten_ops_per_step", "cuda_kernels_per_step")
MAX_ROUNDS_ADVICE = 100  # beyond this many rounds per side, "more rounds" is not a useful answer


def _mfu_column(frame) -> str | None:
    """MFU against the datasheet peak (executed FLOPs): informational, the decision is on step time."""
    c = "mfu_executed"
    return c if c in frame.columns and frame[c].notna().any() else None


def _round_times(rows: pd.DataFrame, normalize: str | None) -> tuple[list[float], str | None]:
    """Every round median of the valid rows (seconds, or seconds x ceiling), and a problem if any."""
    out: list[float] = []
    for _, r in rows.iterrows():
        medians = r["round_means_s"] if isinstance(r["round_means_s"], list) and r["round_means_s"] \
            else [r["step_time_s"]]
        factor = 1.0
        if normalize == "ceiling":
            column = "ceiling_bytes_per_s" if r["phase"] == "decode" else "ceiling_flops_per_s"
            factor = r.get(column)
            if factor is None or pd.isna(factor) or not factor > 0:
                return [], f"no measured {'copy' if r['phase'] == 'decode' else 'GEMM'} ceiling in run {r['run_id']}"
        out += [float(m) * float(factor) for m in medians]
    return out, None


def _work(rows: pd.DataFrame) -> dict:
    """The work per step a side's rows agree on: {column: value}, ``aten_op_counts``; None where unrecorded."""
    out = {}
    for c in WORK_COLUMNS:
        values = {float(v) for v in rows[c] if v is not None and not pd.isna(v)} if c in rows.columns else set()
        out[c] = values.pop() if len(values) == 1 else None
    counts = [v for v in rows["aten_op_counts"] if isinstance(v, dict)] if "aten_op_counts" in rows.columns else []
    out["aten_op_counts"] = counts[0] if counts and all(c == counts[0] for c in counts) else None
    return out


def _summaries(frame, side: str, normalize: str | None) -> dict:
    """key -> {status, tokens_per_s, mfu, times, work, n_runs} per configuration on one side."""
    required = {"tokens_per_s", "step_time_s", "round_means_s", "status", "valid", *KEY}
    missing = sorted(required - set(frame.columns))
    if missing:
        raise UserError(f"{side}: the results lack column(s) {', '.join(missing)}")
    mfu_col = _mfu_column(frame)
    settings = [c for c in SETTINGS if c in frame.columns]
    out = {}
    for key, rows in frame.groupby(list(KEY) + settings, dropna=False, sort=False):
        key = tuple(None if pd.isna(k) else (k.item() if hasattr(k, "item") else k) for k in key)
        key = key[:len(KEY)] + (tuple(_setting(c, v) for c, v in zip(settings, key[len(KEY):])),)
        ok = rows[rows["valid"].fillna(False).astype(bool)]
        if ok.empty:
            out[key] = {"status": ",".join(sorted({str(s) for s in rows["status"]})), "n_runs": len(rows)}
            continue
        times, problem = _round_times(ok, normalize)
        mfu = float(np.median(ok[mfu_col].to_numpy(float))) if mfu_col and ok[mfu_col].notna().all() else None
        out[key] = {"status": "ok", "tokens_per_s": float(np.median(ok["tokens_per_s"].to_numpy(float))),
                    "mfu": mfu, "mfu_column": mfu_col, "times": times, "problem": problem, "work": _work(ok),
                    "n_runs": len(ok)}
    return out


def _setting(column: str, value) -> str:
    """A short label for a non-default way the step ran ('' for the defaults: sdpa, no compile...)."""
    if column == "attn_implementation":
        return "" if value in (None, "sdpa") else f"{value} attention"
    if column == "layer_scale":  # --layers k: a partial model is not the whole one
        return "" if value in (None, 1, 1.0) else f"1/{value:.3g} of the layers"
    return column.replace("_", " ") if value is True else ""


def work_change(base: dict, new: dict) -> str | None:
    """'aten ops 412 -> 436 (aten.copy_ +24)', 'executed FLOPs 1.2e9 -> 1.3e9'..., or None: compared exactly,
    only where both sides recorded the number."""
    changes = []
    labels = {"flops_per_step_executed": "executed FLOPs", "bytes_per_step": "bytes",
              "aten_ops_per_step": "aten ops", "cuda_kernels_per_step": "CUDA kernels"}
    for column, label in labels.items():
        b, n = base.get(column), new.get(column)
        if b is not None and n is not None and b != n:
            changes.append(f"{label} {b:.6g} -> {n:.6g}")
    b_ops, n_ops = base.get("aten_op_counts"), new.get("aten_op_counts")
    if b_ops and n_ops and b_ops != n_ops:
        diff = {op: n_ops.get(op, 0) - b_ops.get(op, 0) for op in set(b_ops) | set(n_ops)}
        moved = sorted(((op, d) for op, d in diff.items() if d), key=lambda x: (-abs(x[1]), x[0]))[:4]
        changes.append("(" + ", ".join(f"{op} {d:+d}" for op, d in moved) + ")")
    return " ".join(changes) or None


def min_rounds(confidence: float) -> int:
    """The fewest rounds per side that give a Mann-Whitney interval at ``confidence``."""
    return next(n for n in range(2, 50) if shift_ci_ranks(n, n, confidence) is not None)


def decide(base_times, new_times, max_drop: float, confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """{verdict, ratio, ratio_low, ratio_high, coverage, rounds_needed} for two samples of step times.

    ``ratio*`` are t_new / t_base (above 1: slower). ``rounds_needed`` (inconclusive only): rounds per side that
    would shrink the interval enough to decide at the current estimate, or None beyond MAX_ROUNDS_ADVICE."""
    m, n = len(base_times), len(new_times)
    shift = hodges_lehmann_shift(np.log(base_times), np.log(new_times), confidence)
    out = {"ratio": math.exp(shift.estimate), "ratio_low": None, "ratio_high": None, "coverage": shift.coverage,
           "rounds_needed": None}
    worse, better = -math.log(1 - max_drop), math.log(1 - max_drop)  # the band of no change, in log ratio
    if shift.low is None:
        out["verdict"] = "inconclusive"
        out["rounds_needed"] = min_rounds(confidence)
        return out
    out["ratio_low"], out["ratio_high"] = math.exp(shift.low), math.exp(shift.high)
    if shift.low > worse:
        out["verdict"] = "regression"
    elif shift.high < better:
        out["verdict"] = "improvement"
    elif better <= shift.low and shift.high <= worse:
        out["verdict"] = "no change"
    else:
        out["verdict"] = "inconclusive"
        half = (shift.high - shift.low) / 2
        distance = min(abs(shift.estimate - b) for b in (worse, better))
        # the interval's half-width scales as sqrt(1/m + 1/n): rounds per side that bring it under the distance
        if distance > 0:
            scale = (half / distance) ** 2
            needed = math.ceil(max(m, n) * scale * 1.1)
            out["rounds_needed"] = needed if needed <= MAX_ROUNDS_ADVICE else None
    return out


def compare(base_frame, new_frame, max_drop: float = DEFAULT_MAX_DROP, *, confidence: float = DEFAULT_CONFIDENCE,
            normalize: str | None = None) -> dict:
    """Match configurations of two frames. Returns {rows, regressions, inconclusive, work_changed, matched,
    max_drop, confidence, normalize}.

    Each row: the key fields, base/new tokens/s and MFU, change (throughput, + is faster, from the estimated
    ratio), the ratio's interval, rounds per side, verdict ("regression" | "improvement" | "no change" |
    "inconclusive" | "missing in new" | "new" | "failed in new (...)" | "not valid in base"), rounds_needed and
    work_changed."""
    if not (0 <= max_drop < 1):
        raise UserError(f"--max-drop must be in [0%, 100%), got {max_drop:.3g}")
    if confidence not in Z_TWO_SIDED:
        raise UserError(f"--confidence must be one of {', '.join(f'{c:.0%}' for c in Z_TWO_SIDED)}, got {confidence:.3g}")
    if normalize not in NORMALIZE:
        raise UserError(f"--normalize must be ceiling (or absent), got {normalize!r}")
    base, new = _summaries(base_frame, "BASE", normalize), _summaries(new_frame, "NEW", normalize)
    common = [k for k in base if k in new]
    if not common:
        raise UserError("BASE and NEW have no configuration in common (model, phase, dtype, batch size, "
                        "sequence length, new tokens and hardware must all match)")
    rows, counts = [], {"regression": 0, "inconclusive": 0, "work_changed": 0}
    for key in sorted(set(base) | set(new), key=lambda k: tuple(str(x) for x in k)):
        b, n = base.get(key), new.get(key)
        row = dict(zip(KEY, key)) | {
            "settings": ", ".join(x for x in key[-1] if x), "base_tokens_per_s": None, "new_tokens_per_s": None,
            "base_mfu": None, "new_mfu": None, "change": None, "change_low": None, "change_high": None,
            "mfu_change": None, "base_rounds": None, "new_rounds": None, "coverage": None, "rounds_needed": None,
            "work_changed": None}
        if b is not None and b["status"] == "ok":
            row |= {"base_tokens_per_s": b["tokens_per_s"], "base_mfu": b["mfu"], "base_rounds": len(b["times"])}
        if n is not None and n["status"] == "ok":
            row |= {"new_tokens_per_s": n["tokens_per_s"], "new_mfu": n["mfu"], "new_rounds": len(n["times"])}
        if n is None:
            row["verdict"] = "missing in new"
        elif b is None:
            row["verdict"] = "new"
        elif b["status"] != "ok":
            row["verdict"] = "not valid in base"
        elif n["status"] != "ok":
            row["verdict"] = f"failed in new ({n['status']})"
            counts["regression"] += 1
        elif b["problem"] or n["problem"]:
            raise UserError(f"--normalize ceiling: {b['problem'] or n['problem']}")
        else:
            d = decide(b["times"], n["times"], max_drop, confidence)
            # the change the two throughput columns show (with --normalize, the estimated change of efficiency)
            change = (n["tokens_per_s"] / b["tokens_per_s"] - 1) if normalize is None else 1 / d["ratio"] - 1
            row |= {"verdict": d["verdict"], "change": change, "coverage": d["coverage"],
                    "rounds_needed": d["rounds_needed"],
                    "change_low": None if d["ratio_high"] is None else 1 / d["ratio_high"] - 1,
                    "change_high": None if d["ratio_low"] is None else 1 / d["ratio_low"] - 1,
                    "work_changed": work_change(b["work"], n["work"])}
            if b["mfu"] and n["mfu"] and b["mfu_column"] == n["mfu_column"]:
                row["mfu_change"] = n["mfu"] / b["mfu"] - 1
            counts["regression"] += d["verdict"] == "regression"
            counts["inconclusive"] += d["verdict"] == "inconclusive"
            counts["work_changed"] += row["work_changed"] is not None
        rows.append(row)
    return {"max_drop": max_drop, "confidence": confidence, "normalize": normalize, "matched": len(common),
            "regressions": counts["regression"], "inconclusive": counts["inconclusive"],
            "work_changed": counts["work_changed"], "rows": rows}


def compare_runs(base_paths, new_paths, max_drop: float = DEFAULT_MAX_DROP, *,
                 confidence: float = DEFAULT_CONFIDENCE, normalize: str | None = None) -> tuple[dict, list[str]]:
    """Load BASE and NEW (run folders or folders of runs) and compare them; returns (result, load problems)."""
    frames, problems = [], []
    for side, paths in (("BASE", base_paths), ("NEW", new_paths)):
        try:
            res = load_results(paths)
            frames.append(res.require_rows())
        except UserError as exc:  # a missing path, or no records at all: say which side
            raise UserError(f"{side}: {exc}") from None
        problems += [f"{side}: {p}" for p in res.problems]
    return compare(frames[0], frames[1], max_drop, confidence=confidence, normalize=normalize), problems
