"""Compare two runs (or folders of runs) and flag regressions: the CI check.

Rows are matched on (model, phase, dtype, batch_size, seq_len, new_tokens, hardware), hardware being
the sheet id or, off the sheet, the device name; also on how the step ran (attention implementation,
compile, static cache, activation checkpointing, --layers). Metrics: tokens/s, and MFU against the datasheet
peak when the device is in the sheet (MFU against a ceiling each run re-measures is not compared: it
moves with the ceiling's own noise).

A drop is a regression when it exceeds BOTH
- the threshold ``max_drop`` (5 % by default): what the user cares about, and
- the noise of the two runs: the sum of their relative spreads, spread = IQR / median of the step
  time (tokens/s and MFU are inverse to it), or, when a side has several runs of one configuration,
  the larger of that and the range of their medians over their median. Two boxes whose medians are
  further apart than the sum of their full IQRs do not overlap even if each were twice as wide —
  conservative (asv's "different" test and its factor play the same two roles), and it needs only
  the median and IQR the tidy frame keeps, not raw samples. The spreads are of step times, so the
  test is on the step-time ratio: t_new / t_base > (1 + spread_base)(1 + spread_new), which is
  1 + noise to first order; a throughput drop, bounded by 100 %, would let any slowdown hide
  behind a spread over 100 %.
A configuration that was valid in BASE and is not in NEW (oom, error, invalid...) is a regression too;
one missing from NEW is reported, not failed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmecon.errors import UserError
from llmecon.records.load import load_results

KEY = ("model", "phase", "dtype", "batch_size", "seq_len", "new_tokens", "hardware")
# how the step ran: matched too when the frames have them (a compiled run is not a slower eager one)
SETTINGS = ("attn_implementation", "compile", "static_cache", "activation_checkpointing", "layer_scale")
DEFAULT_MAX_DROP = 0.05


def _mfu_column(frame) -> str | None:
    """MFU against the datasheet peak (executed FLOPs). Not against the measured ceiling: each run
    re-measures its ceiling, so that ratio moves with the ceiling's own noise, not the model's speed."""
    c = "mfu_executed"
    return c if c in frame.columns and frame[c].notna().any() else None


def _summaries(frame, side: str) -> dict:
    """key -> {status, tokens_per_s, mfu, spread, n_runs} per configuration on one side."""
    required = {"tokens_per_s", "step_time_s", "step_time_iqr_s", "status", "valid", *KEY}
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
        t = ok["step_time_s"].to_numpy(float)
        within = float(np.nanmedian(ok["step_time_iqr_s"].to_numpy(float) / t))
        across = float((t.max() - t.min()) / np.median(t)) if len(t) > 1 else 0.0
        mfu = float(np.median(ok[mfu_col].to_numpy(float))) if mfu_col and ok[mfu_col].notna().all() else None
        out[key] = {"status": "ok", "tokens_per_s": float(np.median(ok["tokens_per_s"].to_numpy(float))),
                    "mfu": mfu, "mfu_column": mfu_col, "spread": max(0.0 if math.isnan(within) else within, across),
                    "n_runs": len(ok)}
    return out


def _setting(column: str, value) -> str:
    """A short label for a non-default way the step ran ('' for the defaults: sdpa, no compile...)."""
    if column == "attn_implementation":
        return "" if value in (None, "sdpa") else f"{value} attention"
    if column == "layer_scale":  # --layers k: a partial model is not the whole one
        return "" if value in (None, 1, 1.0) else f"1/{value:.3g} of the layers"
    return column.replace("_", " ") if value is True else ""


def compare(base_frame, new_frame, max_drop: float = DEFAULT_MAX_DROP) -> dict:
    """Match configurations of two frames. Returns {rows: [...], regressions: n, matched: n, max_drop}.

    Each row: the key fields, base/new tokens/s and MFU, change (relative, + is faster), noise (sum of
    spreads), noise_drop (the throughput drop those spreads allow, the number a drop is compared with), and
    verdict: "regression" | "faster" | "within noise" | "within threshold" | "missing in new"
    | "new" | "failed in new" | "not valid in base"."""
    if not (0 <= max_drop < 1):
        raise UserError(f"--max-drop must be in [0%, 100%), got {max_drop:.3g}")
    base, new = _summaries(base_frame, "BASE"), _summaries(new_frame, "NEW")
    common = [k for k in base if k in new]
    if not common:
        raise UserError("BASE and NEW have no configuration in common (model, phase, dtype, batch size, "
                        "sequence length, new tokens and hardware must all match)")
    rows, regressions = [], 0
    for key in sorted(set(base) | set(new), key=lambda k: tuple(str(x) for x in k)):
        b, n = base.get(key), new.get(key)
        row = dict(zip(KEY, key)) | {"settings": ", ".join(x for x in key[-1] if x), "base_tokens_per_s": None,
                                     "new_tokens_per_s": None, "base_mfu": None, "new_mfu": None,
                                     "change": None, "mfu_change": None, "noise": None, "noise_drop": None}
        if b is not None and b["status"] == "ok":
            row |= {"base_tokens_per_s": b["tokens_per_s"], "base_mfu": b["mfu"]}
        if n is not None and n["status"] == "ok":
            row |= {"new_tokens_per_s": n["tokens_per_s"], "new_mfu": n["mfu"]}
        if n is None:
            row["verdict"] = "missing in new"
        elif b is None:
            row["verdict"] = "new"
        elif b["status"] != "ok":
            row["verdict"] = "not valid in base"
        elif n["status"] != "ok":
            row["verdict"] = f"failed in new ({n['status']})"
            regressions += 1
        else:
            change = n["tokens_per_s"] / b["tokens_per_s"] - 1
            mfu_change = (n["mfu"] / b["mfu"] - 1) if (b["mfu"] and n["mfu"]
                                                        and b["mfu_column"] == n["mfu_column"]) else None
            noise = b["spread"] + n["spread"]
            drop = max(-change, -(mfu_change if mfu_change is not None else 0.0))
            # the noise is a spread of step TIMES: compare it with the step-time ratio (unbounded), not with the
            # throughput drop (< 100 % however slow: a 12x slowdown is a 92 % drop and would hide under a 100 %
            # spread). Spreads compound: t_new / t_base beyond (1 + s_base)(1 + s_new) (~ 1 + noise when small).
            # As a throughput drop, that allowance is noise_drop = 1 - 1 / ((1 + s_base)(1 + s_new)) (< 100 %).
            noise_drop = 1.0 - 1.0 / ((1 + b["spread"]) * (1 + n["spread"]))
            row |= {"change": change, "mfu_change": mfu_change, "noise": noise, "noise_drop": noise_drop}
            if drop > max_drop and drop > noise_drop:
                row["verdict"] = "regression"
                regressions += 1
            elif drop > max_drop:
                row["verdict"] = "within noise"
            elif change > max(max_drop, noise):   # faster: a rise, unbounded like the spreads
                row["verdict"] = "faster"
            else:
                row["verdict"] = "within threshold"
        rows.append(row)
    return {"max_drop": max_drop, "matched": len(common), "regressions": regressions, "rows": rows}


def compare_runs(base_paths, new_paths, max_drop: float = DEFAULT_MAX_DROP) -> tuple[dict, list[str]]:
    """Load BASE and NEW (run folders or folders of runs) and compare them; returns (result, load problems)."""
    frames, problems = [], []
    for side, paths in (("BASE", base_paths), ("NEW", new_paths)):
        try:
            res = load_results(paths)
            frames.append(res.require_rows())
        except UserError as exc:  # a missing path, or no records at all: say which side
            raise UserError(f"{side}: {exc}") from None
        problems += [f"{side}: {p}" for p in res.problems]
    return compare(frames[0], frames[1], max_drop), problems
