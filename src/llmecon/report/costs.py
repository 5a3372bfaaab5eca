"""$ per 1M tokens at measured efficiency, across the price sheet: the numbers behind the report's cost
figure and `llmecon run`'s cost table.

Each row is one price (an instance offer on the price sheet) and one phase, priced with
`calibrate.estimate_inference`: the calibration predicts the step time of the workload on the
price's accelerator, and the cost is that many seconds of one accelerator at the price's rate per
accelerator-hour. When the price's accelerator is not the one measured, the calibration's
efficiencies and overhead are *transferred* to that accelerator's datasheet peaks; such rows carry
``transfer=True`` and say so in their label. Rows that cannot be priced (no fit for the phase, no
datasheet peak for the dtype on that accelerator...) are left out and their reasons returned.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from llmecon.errors import UserError

INFERENCE_PHASES = ("prefill", "decode")
# accelerators the `llmecon run` cost table shows for the preset models (those on the price sheet)
TABLE_ACCELERATORS = ("a100-sxm4-80gb", "h100-sxm", "h200", "l4", "tpu-v5e")
TABLE_PRESETS = ("llama-3-8b", "llama-2-70b")


def reference_workload(calib: dict, phase: str) -> tuple[int, int]:
    """(batch_size, context_len) for pricing a phase: the largest batch and sequence length measured
    for it, so the benched model is priced inside the calibrated range."""
    batches, seqs = [], []
    for fit in calib["fits"]:
        if fit["phase"] != phase:
            continue
        rng = fit.get("range") or {}
        if rng.get("batch_size"):
            batches.append(int(rng["batch_size"][1]))
        if rng.get("seq_len"):
            seqs.append(int(rng["seq_len"][1]))
    if not batches or not seqs:
        raise UserError(f"the calibration has no {phase} fit with a measured range")
    return max(batches), max(seqs)


def _source_dtype(calib: dict, phase: str) -> str:
    dtypes = sorted({f["dtype"] for f in calib["fits"] if f["phase"] == phase})
    if len(dtypes) != 1:
        raise UserError(f"the calibration has {len(dtypes)} dtypes for {phase}: {', '.join(dtypes) or 'none'}")
    return dtypes[0]


def price_label(price) -> str:
    return f"{price.provider} {price.instance} · {price.accelerator_id} · {price.term.replace('_', '-')}"


def cost_rows(calib: dict, models: Sequence[str], prices: Iterable, *, phases: Sequence[str] = INFERENCE_PHASES,
              workloads: dict[str, tuple[int, int]] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per (model, price, phase) that the calibration can price; plus the reasons for the rest.

    Columns: model, price_id, label, provider, instance, term, accelerator_id, usd_per_accelerator_hour,
    phase, dtype, batch_size, context_len, tokens_per_s_per_accelerator, effective_mfu, regime,
    usd_per_1m_tokens, transfer, extrapolated, basis (the calibration's own label)."""
    from llmecon.calibrate import estimate_inference

    rows, skipped = [], []
    prices = list(prices)
    for phase in phases:
        if not any(f["phase"] == phase for f in calib["fits"]):
            skipped.append(f"{phase}: the calibration has no {phase} fit")
            continue
        try:
            batch, ctx = (workloads or {}).get(phase) or reference_workload(calib, phase)
            dtype = _source_dtype(calib, phase)
        except UserError as exc:
            skipped.append(f"{phase}: {exc}")
            continue
        for model in models:
            for price in prices:
                try:
                    est = estimate_inference(calib, model, hardware=price.accelerator_id, dtype=dtype, phase=phase,
                                             batch_size=batch, context_len=ctx,
                                             usd_per_accelerator_hour=price.usd_per_accelerator_hour, transfer=True)
                except UserError as exc:
                    skipped.append(f"{model} {phase} on {price.id}: {exc}")
                    continue
                rows.append({
                    "model": est["model"], "price_id": price.id,
                    "label": price_label(price), "provider": price.provider, "instance": price.instance,
                    "term": price.term, "accelerator_id": price.accelerator_id,
                    "usd_per_accelerator_hour": price.usd_per_accelerator_hour,
                    "phase": phase, "dtype": est["dtype"], "batch_size": batch, "context_len": ctx,
                    "tokens_per_s_per_accelerator": est["tokens_per_s_per_accelerator"],
                    "effective_mfu": est["effective_mfu"], "regime": est["regime"],
                    "usd_per_1m_tokens": est["cost"]["usd_per_1m_tokens"],
                    "transfer": bool(est["transferred"]), "extrapolated": bool(est["extrapolated"]),
                    "basis": est["label"],
                })
    return pd.DataFrame(rows), skipped


def cheapest_per_accelerator(costs: pd.DataFrame) -> pd.DataFrame:
    """For each (model, accelerator, phase), the row of its cheapest price."""
    if costs.empty:
        return costs
    idx = costs.groupby(["model", "accelerator_id", "phase"])["usd_per_1m_tokens"].idxmin()
    return costs.loc[idx.values]


def run_cost_table(calib: dict, measured_models: str | Sequence[str], *, presets: Sequence[str] = TABLE_PRESETS,
                   accelerators: Sequence[str] = TABLE_ACCELERATORS, prices: Iterable | None = None
                   ) -> tuple[pd.DataFrame, list[str]]:
    """The `llmecon run` table: the measured model(s) on every priced accelerator, and a few presets on a
    few of the sheet's accelerators; the cheapest price per accelerator, one row per (model, accelerator)
    with $ per 1M prompt and generated tokens side by side."""
    from llmecon.costmodel.architecture import list_presets
    from llmecon.costmodel.prices import load_prices

    measured = [measured_models] if isinstance(measured_models, str) else list(measured_models)
    prices = list(load_prices() if prices is None else prices)
    known = set(list_presets())
    wanted = [p for p in presets if p in known and p not in measured]
    skipped: list[str] = []
    if not any(fit.get("hardware_id") for fit in calib.get("fits", [])):
        # A device off the hardware sheet (a CPU): pricing an 8B or 70B model on GPUs from its fit would
        # stack a transfer on an extrapolation far outside the measured FLOP range — a number, not an answer.
        skipped.append("presets not priced: the calibration's device is not an accelerator on the hardware "
                       "sheet, so large models on GPUs would be a transfer and a far extrapolation")
        wanted = []
    costs, measured_skipped = cost_rows(calib, measured, prices)
    skipped += measured_skipped
    preset_prices = [p for p in prices if p.accelerator_id in accelerators]
    if wanted and preset_prices:
        more, more_skipped = cost_rows(calib, wanted, preset_prices)
        costs = pd.concat([costs, more], ignore_index=True)
        skipped += more_skipped
    if costs.empty:
        return costs, skipped
    best = cheapest_per_accelerator(costs)
    keys = ["model", "accelerator_id"]
    wide = None
    for phase in INFERENCE_PHASES:
        part = best[best["phase"] == phase]
        if part.empty:
            continue
        part = part.set_index(keys)
        cols = {"usd_per_1m_tokens": f"usd_per_1m_{phase}_tokens", "effective_mfu": f"{phase}_mfu",
                "regime": f"{phase}_regime", "tokens_per_s_per_accelerator": f"{phase}_tokens_per_s",
                "batch_size": f"{phase}_batch_size", "context_len": f"{phase}_context_len"}
        part = part[["price_id", "usd_per_accelerator_hour", "transfer", "extrapolated", "dtype", *cols]].rename(columns=cols)
        if wide is None:
            wide = part
        else:
            wide = wide.join(part[list(cols.values())], how="outer")
            for c in ("price_id", "usd_per_accelerator_hour", "transfer", "extrapolated", "dtype"):
                if c in part:
                    wide[c] = wide[c].fillna(part[c]) if c in wide else part[c]
    wide = wide.reset_index()
    order = {m: i for i, m in enumerate([*measured, *wanted])}
    sort_col = "usd_per_1m_decode_tokens" if "usd_per_1m_decode_tokens" in wide else wide.columns[-1]
    wide = wide.assign(_m=wide["model"].map(lambda m: order.get(m, len(order)))).sort_values(["_m", sort_col])
    return wide.drop(columns="_m").reset_index(drop=True), skipped
