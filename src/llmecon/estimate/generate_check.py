"""Is the serving model right? Measured generate runs predicted from the prefill and decode calibrations.

A generate run (`bench --phase generate`) is a batch of B prompts of P tokens, prefilled together, then O − 1 decode
steps. The serving plan's two step times predict it directly:

    TTFT     = the prefill step of B × P tokens
    TPOT     = the decode step at batch B and the mean context of its steps, P + O/2 (the mean of an affine model)
    request  = TTFT + (O − 1) · TPOT

These are set against the medians measured (TTFT and TPOT over their samples; the request over the calls). The
calibration fits prefill, decode and train only, never generate, so every generate row is held out. It runs the same
prefill and decode code as the bench's own phases, but under its own protocol (a fresh cache per call, a sync per
step), so the check also tests how far the two phases, measured apart, add up to one request.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmecon.calibration.apply import predict_workload
from llmecon.calibration.document import Calibration
from llmecon.calibration.fit import fit_calibration
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.records.load import load_results
from llmecon.vocab import GENERATE

QUANTITIES = ("ttft", "tpot", "request")


def predict_generate(calib: Calibration, shape, batch: int, prompt: int, output: int, *, hardware: str, dtype: str,
                     transfer: bool = False) -> dict[str, float]:
    """Predicted TTFT, TPOT and request seconds of a generate batch (see the module's docstring)."""
    prefill = predict_workload(calib, shape, "prefill", batch, prompt, hardware=hardware, dtype=dtype,
                               transfer=transfer)
    decode = predict_workload(calib, shape, "decode", batch, prompt + output // 2, hardware=hardware, dtype=dtype,
                              transfer=transfer)
    return {"ttft_s": prefill["step_time_s"], "tpot_s": decode["step_time_s"],
            "request_s": prefill["step_time_s"] + (output - 1) * decode["step_time_s"]}


def generate_check(frame: pd.DataFrame, calib: Calibration) -> pd.DataFrame:
    """One row per valid generate configuration: measured and predicted TTFT, TPOT and request time, and each
    relative error |predicted − measured| / measured. UserError when the frame has no valid generate row."""
    rows = frame[(frame["phase"] == GENERATE) & frame["valid"].fillna(False).astype(bool)]
    if rows.empty:
        raise UserError("no valid generate rows to check (bench them with --phase generate)")
    out = []
    for _, r in rows.iterrows():
        shape = load_model_shape(r["model_spec"])
        pred = predict_generate(calib, shape, int(r["batch_size"]), int(r["seq_len"]), int(r["new_tokens"]),
                                hardware=r["hardware"], dtype=r["dtype"])
        measured = {"ttft_s": r["ttft_s"], "tpot_s": r["tpot_s"], "request_s": r["step_time_s"]}
        entry = {"model": r["model"], "hardware": r["hardware"], "dtype": r["dtype"], "batch_size": int(r["batch_size"]),
                 "prompt_tokens": int(r["seq_len"]), "output_tokens": int(r["new_tokens"])}
        for q in QUANTITIES:
            m, p = float(measured[f"{q}_s"]), float(pred[f"{q}_s"])
            entry |= {f"{q}_s": m, f"{q}_predicted_s": p, f"{q}_rel_error": abs(p - m) / m}
        out.append(entry)
    return pd.DataFrame(out)


def summary(check: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Median and maximum relative error of each quantity over the checked rows."""
    return {q: {"median_rel_error": float(np.median(check[f"{q}_rel_error"])),
                "max_rel_error": float(np.max(check[f"{q}_rel_error"])), "n": int(len(check))} for q in QUANTITIES}


def held_out_check(frame: pd.DataFrame, fit_batch_sizes, fit_seq_lens, **fit_options) -> tuple[pd.DataFrame, dict,
                                                                                           Calibration]:
    """One bench run that measured prefill, decode and generate together (its rounds interleaved, so that the load of a
    shared machine falls on all three alike), split in two: calibrate on the prefill and decode rows whose batch is in
    ``fit_batch_sizes`` and sequence length in ``fit_seq_lens``, then check the generate rows whose batch or prompt
    length lies outside them. Returns (checked rows, summary, the calibration)."""
    fit_rows = frame[frame["phase"].isin(("prefill", "decode")) & frame["batch_size"].isin(fit_batch_sizes)
                     & frame["seq_len"].isin(fit_seq_lens)]
    calib = fit_calibration(fit_rows, **fit_options)
    held = frame[(frame["phase"] == GENERATE) & ~(frame["batch_size"].isin(fit_batch_sizes)
                                                  & frame["seq_len"].isin(fit_seq_lens))]
    checked = generate_check(held, calib)
    return checked, summary(checked), calib


def check_runs(runs, calibration) -> tuple[pd.DataFrame, dict]:
    """`llmecon plan check`: the generate rows of ``runs`` (folders) checked against ``calibration`` (a file or a
    Calibration), and the summary."""
    calib = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
    checked = generate_check(load_results(runs).require_rows(), calib)
    return checked, summary(checked)
