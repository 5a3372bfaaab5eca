"""The cost table: $ per 1M tokens at measured efficiency, across the price sheet. It is `llmecon run`'s
cost table, ``costs.csv`` and the report's cost section: one table, built here once.

One row per (model, accelerator, phase): the cheapest offer of one price term (on-demand by default) for that
accelerator, priced with the calibration (apply.predict_workload) at the largest batch and length measured
for the phase, so the benched model is priced inside the calibrated range. When the offer's accelerator is
not the one measured, the calibration's efficiencies and overhead are *transferred* to that accelerator's
datasheet peaks; such rows carry ``transfer=True``. Offers that cannot be priced (no fit for the phase, no
datasheet peak for the dtype...) are left out and their reasons returned.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from llmecon.calibration.apply import predict_workload, priceable_mfu
from llmecon.calibration.document import Calibration
from llmecon.costmodel.presets import list_presets, load_model_shape
from llmecon.costmodel.estimate import inference_cost
from llmecon.costmodel.prices import Price, load_prices, parse_term
from llmecon.errors import UserError
from llmecon.vocab import DEFAULT_PRICE_TERM, INFERENCE_PHASES

# the presets priced beside the measured model, on a few of the sheet's accelerators
TABLE_PRESETS = ("llama-3-8b", "llama-2-70b")
TABLE_ACCELERATORS = ("a100-sxm4-80gb", "h100-sxm", "h200", "l4", "tpu-v5e")
COLUMNS = ("model", "accelerator_id", "phase", "price_id", "provider", "instance", "term", "usd_per_accelerator_hour",
           "dtype", "batch_size", "context_len", "tokens_per_s_per_accelerator", "effective_mfu", "regime",
           "usd_per_1m_tokens", "transfer", "extrapolated", "basis")


def reference_workload(calib: Calibration, phase: str) -> tuple[int, int]:
    """(batch_size, length) for pricing a phase: the largest batch and length measured for it."""
    batches = [f.range.batch_size[1] for f in calib.fits if f.phase == phase and f.range.batch_size]
    lengths = [f.range.seq_len[1] for f in calib.fits if f.phase == phase and f.range.seq_len]
    if not batches or not lengths:
        raise UserError(f"the calibration has no {phase} fit with a measured range")
    return max(batches), max(lengths)


def _phase_dtype(calib: Calibration, phase: str) -> str:
    dtypes = sorted({f.dtype for f in calib.fits if f.phase == phase})
    if len(dtypes) != 1:
        raise UserError(f"the calibration has {len(dtypes)} dtypes for {phase}: {', '.join(dtypes) or 'none'}")
    return dtypes[0]


def cheapest_offers(prices: Iterable[Price], term: str) -> list[Price]:
    """The cheapest offer per accelerator per accelerator-hour among the offers of one term."""
    best: dict[str, Price] = {}
    for p in prices:
        if p.term == term and (p.accelerator_id not in best
                               or p.usd_per_accelerator_hour < best[p.accelerator_id].usd_per_accelerator_hour):
            best[p.accelerator_id] = p
    return list(best.values())


def cost_rows(calib: Calibration, models: Sequence[str], offers: Iterable[Price]) -> tuple[pd.DataFrame, list[str]]:
    """One row per (model, offer, phase) the calibration can price, and the reasons for the rest."""
    rows, skipped = [], []
    offers = list(offers)
    for phase in INFERENCE_PHASES:
        if not any(f.phase == phase for f in calib.fits):
            skipped.append(f"{phase}: the calibration has no {phase} fit")
            continue
        try:
            batch, length = reference_workload(calib, phase)
            dtype = _phase_dtype(calib, phase)
        except UserError as exc:
            skipped.append(f"{phase}: {exc}")
            continue
        for model in models:
            shape = load_model_shape(model)
            for offer in offers:
                try:
                    pred = predict_workload(calib, shape, phase, batch, length, hardware=offer.accelerator_id,
                                            dtype=dtype, transfer=True)
                    cost = inference_cost(pred["flops_per_step"] / pred["tokens_per_step"], pred["peak_flops_per_s"],
                                          priceable_mfu(pred), offer.usd_per_accelerator_hour)
                except UserError as exc:
                    skipped.append(f"{shape.name} {phase} on {offer.id}: {exc}")
                    continue
                rows.append({
                    "model": shape.name, "accelerator_id": offer.accelerator_id, "phase": phase, "price_id": offer.id,
                    "provider": offer.provider, "instance": offer.instance, "term": offer.term,
                    "usd_per_accelerator_hour": offer.usd_per_accelerator_hour, "dtype": dtype, "batch_size": batch,
                    "context_len": length, "tokens_per_s_per_accelerator": pred["tokens_per_s_per_accelerator"],
                    "effective_mfu": pred["effective_mfu"], "regime": pred["regime"],
                    "usd_per_1m_tokens": cost["usd_per_1m_tokens"], "transfer": bool(pred["transferred"]),
                    "extrapolated": bool(pred["extrapolated"]), "basis": pred["label"],
                })
    return pd.DataFrame(rows, columns=list(COLUMNS)), skipped


def cost_table(calib: Calibration, measured_models: Sequence[str], *, term: str = DEFAULT_PRICE_TERM,
               presets: Sequence[str] = TABLE_PRESETS, accelerators: Sequence[str] = TABLE_ACCELERATORS,
               prices: Iterable[Price] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The cost table: the measured model(s) on every accelerator with an offer of ``term``, and a few presets
    on a few accelerators (only when the calibrated device is on the hardware sheet: pricing an 8B model on
    GPUs from a CPU's fit would stack a transfer on a far extrapolation). Returns (table, reasons for what
    was left out); the table is sorted by model, phase and $ per 1M tokens."""
    term = parse_term(term)
    offers = cheapest_offers(load_prices() if prices is None else prices, term)
    skipped: list[str] = []
    if not offers:
        return pd.DataFrame(columns=list(COLUMNS)), [f"the price sheet has no {term} offer"]
    known = set(list_presets())
    measured = list(dict.fromkeys(measured_models))
    extra = [p for p in presets if p in known and p not in measured]
    if extra and not any(f.hardware_id for f in calib.fits):
        skipped.append("presets not priced: the calibration's device is not an accelerator on the hardware sheet, "
                       "so large models on GPUs would be a transfer and a far extrapolation")
        extra = []
    costs, why = cost_rows(calib, measured, offers)
    skipped += why
    if extra:
        more, why = cost_rows(calib, extra, [o for o in offers if o.accelerator_id in accelerators])
        costs = pd.concat([costs, more], ignore_index=True) if len(more) else costs
        skipped += why
    order = {m: i for i, m in enumerate([load_model_shape(m).name for m in measured + extra])}
    costs = costs.assign(_m=costs["model"].map(order), _p=costs["phase"].map(INFERENCE_PHASES.index))
    return costs.sort_values(["_m", "_p", "usd_per_1m_tokens"]).drop(columns=["_m", "_p"]).reset_index(drop=True), skipped


def wide(costs: pd.DataFrame) -> pd.DataFrame:
    """The cost table with prefill and decode side by side: one row per (model, accelerator), columns
    usd_per_1m_<phase>_tokens, <phase>_mfu, <phase>_regime, <phase>_tokens_per_s, in decode-price order."""
    keys = ["model", "accelerator_id", "price_id", "provider", "instance", "term", "usd_per_accelerator_hour",
            "dtype"]
    if costs.empty:
        return pd.DataFrame(columns=keys)
    out = None
    for phase in INFERENCE_PHASES:
        part = costs[costs["phase"] == phase]
        if part.empty:
            continue
        part = part[keys + ["usd_per_1m_tokens", "effective_mfu", "regime", "tokens_per_s_per_accelerator",
                            "batch_size", "context_len", "transfer", "extrapolated"]].rename(columns={
            "usd_per_1m_tokens": f"usd_per_1m_{phase}_tokens", "effective_mfu": f"{phase}_mfu",
            "regime": f"{phase}_regime", "tokens_per_s_per_accelerator": f"{phase}_tokens_per_s",
            "batch_size": f"{phase}_batch_size", "context_len": f"{phase}_context_len",
            "transfer": f"{phase}_transfer", "extrapolated": f"{phase}_extrapolated"})
        out = part if out is None else out.merge(part, on=keys, how="outer")
    flags = [c for c in out.columns if c.endswith(("_transfer", "_extrapolated"))]
    out["transfer"] = out[[c for c in flags if c.endswith("_transfer")]].fillna(False).astype(bool).any(axis=1)
    out["extrapolated"] = out[[c for c in flags if c.endswith("_extrapolated")]].fillna(False).astype(bool).any(axis=1)
    out = out.drop(columns=flags)
    order = {m: i for i, m in enumerate(dict.fromkeys(costs["model"]))}
    sort = "usd_per_1m_decode_tokens" if "usd_per_1m_decode_tokens" in out else "usd_per_1m_prefill_tokens"
    out = out.assign(_m=out["model"].map(order)).sort_values(["_m", sort]).drop(columns="_m")
    return out.reset_index(drop=True)
