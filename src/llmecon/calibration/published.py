"""Reference calibrations from published measurements: the sheet's points (costmodel/data/published.csv) turned into
step rows, fitted by the same code as measured runs (fit.fit_calibration), one calibration per engine with one fit
per (accelerator, dtype, phase), labelled ``published``.

A published point becomes the row of one step on one accelerator — the step time, its FLOPs and bytes counted by the
cost model (costmodel.flops / costmodel.memory, ``executed`` convention) for the point's model preset, batch and
lengths, and the accelerator's datasheet peaks — or is left out with the reason:

- decode, a batch of B at a known rate: step = B / (tokens/s), 1 / (tokens/s/user) or ms/token / 1000; the context
  is the prompt plus half the output (the mean over the run's steps; the prompt alone where the output length is
  not published, a few hundred tokens of KV cache that is small beside the weights at batch 1).
- generate, a static batch (B prompts of I tokens, then O tokens each; the value is output tokens/s): the run takes
  T = B·O / value; the prompts' prefill, predicted by a fit of the same engine's prefill points on that accelerator
  and dtype (compute + overhead, the two-parameter model of fit.py, fitted on those points alone), is taken off, and
  the rest is O − 1 decode steps at the mean context I + O/2. Without such prefill points, or where the prefill
  would be more than 90 % of T (the decode step is then not resolvable from T), the point is left out.
- prefill: ms of one prefill of B × I tokens (a time to first token at batch B), or prompt tokens/s at a known B, I.
- train, at the published scale: each accelerator's step is the global step's FLOPs / the accelerators; its time is
  (global batch × seq) / accelerators / (tokens/s/accelerator), or F / (MFU × dense peak) for %MFU, or
  F / (TFLOP/s per accelerator) — the last two take the source's FLOP count for ours (its MFU definition is in the
  note of the row; Megatron's and PaLM's count the same matmuls as ``executed`` without recomputation). Where the
  global batch is not published, one sequence per accelerator stands in (the rate is what the row gives; only t0
  would depend on it, and training steps are far above any overhead). Multi-accelerator training stays in: the
  efficiency at scale, communication included, is what a training estimate needs.
- left out: serving runs (the batch the server formed is not published, so there is no step), weight-only
  quantized points (the cost model's bytes are for weights in the dtype), inference on several accelerators
  (tensor-parallel communication is not modelled), and points with no datasheet peak for their dtype.

The points are single numbers as published — medians of their authors' runs — so every fit has the same minimum
of three distinct shapes and the same held-out errors (leave-one-shape-out, and leave-one-model-out with two or more
models) as a measured one.

`fit_published()` does it from the sheets; the built-in result is shipped as data (data/published-calibrations.json)
so that `llmecon estimate` reads it without numpy or pandas (calibration.reference), and a test holds the shipped
file equal to a fresh fit. Regenerate it with ``python -m llmecon.calibration.published``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from llmecon.calibration.crosscheck import cross_hardware
from llmecon.calibration.document import Calibration
from llmecon.calibration.fit import fit_calibration, nnls_relative
from llmecon.calibration.reference import SHIPPED, SHIPPED_KIND
from llmecon.costmodel import flops as cf
from llmecon.costmodel import memory as cm
from llmecon.costmodel.hardware import Accelerator, load_hardware
from llmecon.costmodel.presets import load_model_shape
from llmecon.costmodel.published import Measurement, load_published
from llmecon.errors import UserError
from llmecon.files import atomic_write_text, dumps
from llmecon.vocab import CALIBRATION_CONVENTION, CONVENTIONS

BASIS = "published"
MAX_PREFILL_SHARE = 0.9


@dataclass(frozen=True)
class Skipped:
    """A published point no fit could use, and why."""

    id: str
    engine: str
    accelerator_id: str
    phase: str
    reason: str

    def describe(self) -> str:
        return f"{self.id}: {self.reason}"


def _source_url(source: str) -> str:
    """'https://… (the table)' -> the address alone."""
    return source.split()[0]


def _shape_cached(cache: dict, name: str):
    if name not in cache:
        cache[name] = load_model_shape(name)
    return cache[name]


def _row(m: Measurement, shape, acc: Accelerator, phase: str, batch: int, seq_len: int, new_tokens: int,
         step_time_s: float, flops: dict[str, float], bytes_per_step: float | None) -> dict:
    return {"run_id": m.id, "engine": m.engine, "source": _source_url(m.source), "hardware": acc.id,
            "hardware_id": acc.id, "device_name": acc.name, "dtype": m.dtype, "phase": phase, "valid": True,
            "status": "ok", "model": m.model, "batch_size": batch, "seq_len": seq_len, "new_tokens": new_tokens,
            "num_hidden_layers": shape.num_hidden_layers, "step_time_s": step_time_s,
            **{f"flops_per_step_{c}": v for c, v in flops.items()}, "bytes_per_step": bytes_per_step,
            "peak_flops_per_s": float(acc.peak(m.dtype)), "peak_bytes_per_s": float(acc.memory_bytes_per_s),
            "accelerator_count": 1}


def _decode_row(m, shape, acc, batch: int, context: int, step_time_s: float) -> dict:
    flops = {c: cf.decode_step_flops(shape, batch, context, c) for c in CONVENTIONS}
    return _row(m, shape, acc, "decode", batch, context, 1, step_time_s, flops,
                cm.decode_step_bytes(shape, m.dtype, batch, context))


def _prefill_row(m, shape, acc, batch: int, length: int, step_time_s: float) -> dict:
    flops = {c: cf.prefill_flops(shape, batch, length, c) for c in CONVENTIONS}
    return _row(m, shape, acc, "prefill", batch, length, 0, step_time_s, flops, None)


def _train_row(m, shape, acc) -> dict | str:
    count = m.accelerator_count or 1
    if m.seq_len is None:
        return "a training point needs its sequence length"
    batch = m.batch_size or count
    F = {c: cf.train_step_flops(shape, batch, m.seq_len, c) / count for c in CONVENTIONS}
    if m.unit == "tokens/s/accelerator":
        t = batch * m.seq_len / count / m.value
    elif m.unit == "tokens/s":
        t = batch * m.seq_len / m.value
    elif m.unit == "%MFU":
        t = F[CALIBRATION_CONVENTION] / (m.value / 100 * float(acc.peak(m.dtype)))
    elif m.unit == "TFLOP/s/accelerator":
        t = F[CALIBRATION_CONVENTION] / (m.value * 1e12)
    else:
        return f"unit {m.unit} is not a training rate"
    return _row(m, shape, acc, "train", batch, m.seq_len, 0, t, F, None) | {"accelerator_count": count}


def _inference_row(m: Measurement, shape, acc) -> dict | str:
    """The decode or prefill row of a single-step point (generate points are handled after the prefill fits)."""
    if m.phase == "decode":
        batch = m.batch_size
        if m.unit == "tokens/s":
            t = batch / m.value
        elif m.unit == "tokens/s/user":
            t = 1.0 / m.value
        elif m.unit == "ms/token":
            t = m.value / 1e3
        else:
            return f"unit {m.unit} is not a decode rate of one accelerator"
        if m.input_len is None:
            return "a decode point needs its prompt length (input_len) for the context it attends"
        context = m.input_len + (m.output_len or 0) // 2
        return _decode_row(m, shape, acc, batch, max(context, 1), t)
    # prefill
    length = m.input_len or m.seq_len
    if m.batch_size is None or length is None:
        return "a prefill point needs its batch size and prompt length"
    if m.unit == "ms":
        t = m.value / 1e3
    elif m.unit == "tokens/s":
        t = m.batch_size * length / m.value
    else:
        return f"unit {m.unit} is not a prefill time of one accelerator"
    return _prefill_row(m, shape, acc, m.batch_size, length, t)


def _why_not(m: Measurement, acc: Accelerator | None) -> str | None:
    if acc is None:
        return f"{m.accelerator_id} is not in the hardware sheet"
    if acc.peak(m.dtype) is None:
        return f"the hardware sheet has no dense {m.dtype} peak for {acc.id}"
    if m.phase == "serve":
        return "a serving run: the batch the server formed is not published, so it gives no step time"
    if m.weights:
        return (f"weight-only {m.weights} quantization: the cost model counts weight bytes in the dtype "
                f"({m.dtype})")
    if m.phase != "train" and (m.accelerator_count or 1) > 1:
        return (f"inference on {m.accelerator_count} accelerators: tensor-parallel communication is not modelled "
                "per accelerator")
    return None


def _prefill_models(rows: list[dict]) -> dict[tuple, tuple[np.ndarray, int]]:
    """(engine, hardware, dtype) -> ((1/(P·η), t0), points): compute + overhead fitted on that group's prefill rows
    alone (at least two, of two prompt lengths), to take the prompts' prefill off a generate run."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["phase"] == "prefill":
            groups.setdefault((r["engine"], r["hardware"], r["dtype"]), []).append(r)
    out = {}
    for key, group in groups.items():
        F = np.array([r[f"flops_per_step_{CALIBRATION_CONVENTION}"] for r in group], float)
        if len(set(F)) < 2:
            continue
        t = np.array([r["step_time_s"] for r in group], float)
        X = np.column_stack([F, np.ones(len(F))])
        theta = nnls_relative(X, t, np.array([1.0 / group[0]["peak_flops_per_s"], 0.0]))
        out[key] = (theta, len(group))
    return out


def _generate_row(m: Measurement, shape, acc, prefill_models) -> dict | str:
    if m.unit not in ("tokens/s", "tokens/s/accelerator"):
        return f"unit {m.unit} is not a generate rate"
    B, I, O = m.batch_size, m.input_len, m.output_len
    if O < 2:
        return "a generate run of fewer than 2 output tokens has no decode step"
    model = prefill_models.get((m.engine, acc.id, m.dtype))
    if model is None:
        return (f"no {m.engine} prefill points on {acc.id} {m.dtype} (two prompt lengths or more) to take the "
                "prompts' prefill off the run's time")
    total_s = B * O / m.value
    theta, _ = model
    prefill_s = float(theta[0] * cf.prefill_flops(shape, B, I, CALIBRATION_CONVENTION) + theta[1])
    if prefill_s >= MAX_PREFILL_SHARE * total_s:
        return (f"the predicted prefill ({prefill_s:.3g} s) is {prefill_s / total_s:.0%} of the run's "
                f"{total_s:.3g} s: the decode steps are not resolvable from it")
    return _decode_row(m, shape, acc, B, I + O // 2, (total_s - prefill_s) / (O - 1))


def published_rows(measurements: Iterable[Measurement]) -> tuple[pd.DataFrame, list[Skipped]]:
    """Every usable point as one row of the tidy frame that fit.fit_calibration reads (plus ``engine`` and
    ``source``), and every other point with the reason it was left out."""
    accelerators = load_hardware()
    shapes: dict = {}
    rows, skipped, generate = [], [], []
    for m in measurements:
        acc = accelerators.get(m.accelerator_id)
        reason = _why_not(m, acc)
        if reason is None:
            shape = _shape_cached(shapes, m.model)
            if m.phase == "generate":
                generate.append((m, shape, acc))
                continue
            made = _train_row(m, shape, acc) if m.phase == "train" else _inference_row(m, shape, acc)
            if isinstance(made, str):
                reason = made
            else:
                rows.append(made)
        if reason is not None:
            skipped.append(Skipped(m.id, m.engine, m.accelerator_id, m.phase, reason))
    prefill_models = _prefill_models(rows)
    for m, shape, acc in generate:
        made = _generate_row(m, shape, acc, prefill_models)
        if isinstance(made, str):
            skipped.append(Skipped(m.id, m.engine, m.accelerator_id, m.phase, made))
        else:
            rows.append(made)
    return pd.DataFrame(rows), skipped


@dataclass(frozen=True)
class PublishedSet:
    """One reference calibration per engine, and the points none of them could use."""

    calibrations: dict[str, Calibration]
    skipped: list[Skipped]
    unfitted: dict[str, str]   # engine -> why none of its groups could be fitted

    def to_json(self) -> dict:
        return {"kind": SHIPPED_KIND,
                "calibrations": [c.model_dump(mode="json") for _, c in sorted(self.calibrations.items())],
                "unfitted": dict(sorted(self.unfitted.items())), "skipped": [vars(s) for s in self.skipped]}


def fit_engine(rows: pd.DataFrame, engine: str) -> Calibration:
    """The engine's reference calibration: fit.fit_calibration on its rows, labelled published, each fit carrying the
    sources of its points (UserError when no group of it can be fitted)."""
    mine = rows[rows["engine"] == engine]
    sources = dict(zip(mine["run_id"], mine["source"]))
    calib = fit_calibration(mine, sources=sorted(set(sources.values())))
    fits = [f.model_copy(update={"sources": sorted({sources[r] for r in f.run_ids})}) for f in calib.fits]
    return calib.model_copy(update={"basis": BASIS, "engine": engine, "fits": fits})


def fit_published(extra_paths: Iterable = ()) -> PublishedSet:
    """Fit every engine's points of the published sheets (built-in, $LLMECON_PUBLISHED, extra_paths)."""
    rows, skipped = published_rows(load_published(extra_paths))
    calibrations, failed = {}, {}
    for engine in sorted(set(rows["engine"])) if len(rows) else []:
        try:
            calibrations[engine] = fit_engine(rows, engine)
        except UserError as exc:
            failed[engine] = str(exc)
    fitted = {r for c in calibrations.values() for f in c.fits for r in f.run_ids}
    unfitted = rows[~rows["run_id"].isin(fitted)] if len(rows) else rows
    refused = {(c.engine, r.hardware, r.dtype, r.phase): r.refused
               for c in calibrations.values() for r in c.refused}
    for _, r in unfitted.iterrows():
        why = refused.get((r["engine"], r["hardware"], r["dtype"], r["phase"])) or failed.get(r["engine"], "")
        skipped.append(Skipped(r["run_id"], r["engine"], r["hardware"], r["phase"], f"not fitted: {why}"))
    return PublishedSet(calibrations, skipped, failed)


def cross_hardware_check(extra_paths: Iterable = ()) -> pd.DataFrame:
    """The cross-hardware error table of the published sheets (calibration.crosscheck)."""
    rows, _ = published_rows(load_published(extra_paths))
    return cross_hardware(rows, fit_published(extra_paths).calibrations)


def write_shipped(path: Path = SHIPPED, extra_paths: Iterable = ()) -> Path:
    """Fit the published sheets (built-in, $LLMECON_PUBLISHED, extra_paths) and write them as a file of reference
    calibrations: the shipped one (`python -m llmecon.calibration.published`) or a user's
    (`llmecon calibrations --fit-published FILE`)."""
    data = fit_published(extra_paths).to_json()
    for c in data["calibrations"]:   # reproducible: the file changes only when a fit does
        c["created_utc"], c["tool_version"] = "", ""
    return atomic_write_text(path, dumps(data, indent=1) + "\n")


if __name__ == "__main__":   # pragma: no cover - the regeneration command, tested through write_shipped
    print(write_shipped(Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED))
