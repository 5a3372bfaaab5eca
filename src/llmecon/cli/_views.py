"""Printers of library objects that more than one command shows (a command module never imports another)."""

from __future__ import annotations

from pathlib import Path

import click

from llmecon.calibration.document import Calibration
from llmecon.cli._output import console, frame_records, show, table, warn
from llmecon.estimate.article import describe_source
from llmecon.units import pct, quantity, si, spread, usd
from llmecon.vocab import GENERATE


def latency(median, p90) -> str | None:
    """'12.3 ms / 15.1 ms': a latency's median and 90th percentile (a generate row's TTFT or TPOT)."""
    if median is None:
        return None
    return f"{si(median, 's')} / {si(p90, 's')}"


def print_measurements(frame, title: str, run_dir: Path | None = None) -> None:
    """One row per configuration: throughput, step time, its noise between rounds, utilisation, and why a row is
    not ok or what to be wary of (noisy rows, a busy host)."""
    frame = frame.sort_values(["model", "phase", "seq_len", "batch_size"]) if len(frame) else frame
    generate = bool(len(frame)) and frame["phase"].eq(GENERATE).any()
    spread_over = bool(len(frame)) and frame["world_size"].fillna(1).gt(1).any()
    if spread_over:
        frame = frame.sort_values(["model", "phase", "seq_len", "batch_size", "world_size"])
    rows = []
    for r in frame_records(frame):
        warnings = "; ".join(w for w in (r["warnings"] or "").split("; ") if w and w != "dirty_build")
        world = ([f"{r['parallel']} x{r['world_size']}" if r["world_size"] and r["world_size"] > 1 else "1 device",
                  pct(r["scaling_efficiency"]) + (" *" if (r["scaling_baseline"] or "").startswith("run ") else "")
                  if r["scaling_efficiency"] is not None else None] if spread_over else [])
        rows.append([r["model"], r["phase"], *world[:1], r["batch_size"], r["seq_len"], r["status"],
                     si(r["tokens_per_s"], "tok/s"),
                     si(r["step_time_s"], "s"), spread(r["step_time_spread"], r["n_rounds"]), pct(r["mfu_executed"]),
                     pct(r["mfu_executed_vs_ceiling"]), pct(r["bandwidth_util"]), pct(r["bandwidth_util_vs_ceiling"]),
                     *([latency(r["ttft_s"], r["ttft_p90_s"]), latency(r["tpot_s"], r["tpot_p90_s"])] if generate else []),
                     *world[1:],
                     # why a row failed, else what to be wary of (noisy, a busy host): never a bare "ok" then
                     (r["reason"] or (f"warning: {warnings}" if warnings else ""))[:60] or None])
    hw = [h for h in dict.fromkeys(frame["hardware_id"]) if h] if len(frame) else []
    dirty = len(frame) and frame["warnings"].fillna("").str.contains("dirty_build").any()
    rounds = sorted({int(n) for n in frame["n_rounds"].dropna()}) if len(frame) else []
    caption = (f"step: the median over {'/'.join(map(str, rounds)) or 'the'} rounds of each round's mean step time; "
               "noise: their spread "
               "(half their range over the median). MFU executed = FLOPs in the executed convention (every matmul "
               "eager attention runs, the full T×T scores included) per second / dense datasheet peak "
               f"({hw[0] if hw else 'device not in the sheet: no datasheet MFU'}) or / the GEMM ceiling measured on "
               "this device; MBU (model bandwidth utilisation) = decode bytes (weights + one read of the KV cache) per "
               "second / datasheet or measured copy bandwidth, a lower bound of the real traffic."
               + (f"\n{GENERATE}: a step is one batched request (prompt prefill + new_tokens - 1 decode steps), "
                  "tokens its generated tokens; TTFT: time to first token (prefill + greedy token), TPOT: time per "
                  "output token (one decode step), median / p90 over every request of every round"
                  if generate else "")
               + ("\nbeyond one device: batch is per rank for ddp/fsdp (tp ranks share it); tokens/s is the job's; step "
                  "the slowest rank's; MFU and MBU per device (the job's work over its devices' peaks); scaling: "
                  "tokens/s over devices x the same configuration's on one device (* from an earlier run)"
                  if spread_over else "")
               + (f"\nRun folder: {run_dir}   (llmecon results show {run_dir} for every column)" if run_dir else "")
               + ("\nwarning: llmecon ran from a git checkout with uncommitted changes (dirty_build)" if dirty else ""))
    show(table(title, ["model", "phase", *(["devices"] if spread_over else []), "batch", "seq", "status", "tokens/s",
                       "step", "noise", "MFU executed sheet", "MFU executed ceiling", "MBU sheet", "MBU ceiling",
                       *(["TTFT p50 / p90", "TPOT p50 / p90"] if generate else []),
                       *(["scaling"] if spread_over else []), "reason / warnings"], rows,
               caption=caption))


def print_calibration(calib: Calibration) -> None:
    """The fits as one table, their held-out errors in one line, their warnings and refusals on stderr."""
    src = {"datasheet": "sheet", "measured_ceiling": "meas."}
    conv = calib.flop_convention
    rows = [[f.hardware, f.dtype, f.phase, f.n_shapes, len(f.models), pct(f.eta_compute), pct(f.eta_memory),
             si(f.t0_s, "s"), si(f.tau_s_per_layer, "s") if f.tau_s_per_layer is not None else None,
             f"{si(f.peak_flops_per_s, 'FLOP/s')} {src[f.peak_flops_source]}",
             f"{si(f.peak_bytes_per_s, 'B/s')} {src.get(f.peak_bytes_source, '')}" if f.eta_memory else None,
             _errors(f.heldout), _errors(f.heldout_by_model)] for f in calib.fits]
    caption = (f"F counted in the {conv} FLOP convention (η compute is against it: an MFU of {conv} FLOPs). η "
               "against P and W: the datasheet (sheet) or the ceiling measured on the device (meas.). Overhead t0 + "
               "L·τ for a model of L decoder layers (τ only when the runs hold two or more depths). Held-out error, "
               "median / max of |predicted - measured| / measured: by shape, each shape predicted by a fit without "
               "it (refuses above --max-heldout-error); by model, each model predicted by a fit on the other models "
               "(warns).")
    show(table("Calibration: step time = F/(P·η_c) + B/(W·η_m) + t0 + L·τ",
               ["hardware", "dtype", "phase", "shapes", "models", f"η compute ({conv})", "η memory", "overhead t0",
                "per layer τ", "P", "W", "held-out: by shape", "by model"], rows, caption=caption))
    click.echo("held-out error (median / max): " + "; ".join(
        f"{f.key} by shape {_errors(f.heldout)}"
        + (f", by model {_errors(f.heldout_by_model)}{_folds(f.heldout_by_model)}" if f.heldout_by_model else "")
        for f in calib.fits))
    for f in calib.fits:
        for w in f.warnings:
            warn(f"{f.key}: {w}")
    for c in calib.communication:
        click.echo(f"communication, {c.parallel} on {c.hardware}: overlap {pct(c.overlap)} of the modelled "
                   f"communication hidden (least squares {c.overlap_unclipped:+.2f} before clipping to [0, 1]), "
                   f"{c.n_points} point(s) at world size {'/'.join(map(str, c.world_sizes))} on "
                   f"{'/'.join(map(str, c.nnodes))} node(s); step error median {pct(c.median_rel_error)}, "
                   f"max {pct(c.max_rel_error)}")
    for r in calib.refused:
        warn(f"not fitted: {r.describe()}")


def _folds(heldout) -> str:
    """' (tiny 12%, tiny-12l 30%)': each held-out model's median error."""
    folds = heldout.by_fold or {}
    return f" ({', '.join(f'{m} {pct(v)}' for m, v in folds.items())})" if folds else ""


def _errors(heldout) -> str | None:
    return f"{pct(heldout.median_rel_error)} / {pct(heldout.max_rel_error)}" if heldout is not None else None


def print_costs(wide, measured_on: str, term: str) -> None:
    """The cost table, prefill and decode side by side (estimate.costs.wide), the offer's term on every row."""
    rows = []
    for r in wide.to_dict(orient="records"):
        basis = "transfer" if r["transfer"] else "measured"
        rows.append([r["model"], r["accelerator_id"], f"{r['provider']} {r['instance']}", r["term"].replace("_", "-"),
                     f"{usd(r['usd_per_accelerator_hour'])}/h", usd(r.get("usd_per_1m_prefill_tokens")),
                     usd(r.get("usd_per_1m_decode_tokens")), pct(r.get("decode_mfu")), r.get("decode_regime"),
                     basis + (", extrapolated" if r["extrapolated"] else "")])
    if not rows:
        return
    first = wide.iloc[0].to_dict()
    work = "; ".join(f"{ph} batch {int(first[f'{ph}_batch_size'])} x {int(first[f'{ph}_context_len'])}"
                     for ph in ("prefill", "decode") if _known(first.get(f"{ph}_batch_size")))
    title = f"$ per 1M tokens at measured efficiency, cheapest {term.replace('_', '-')} offer per accelerator"
    caption = (f"At the efficiency measured here: {work}, {first['dtype']}. transfer: the efficiency measured on "
               f"{measured_on}, applied to that accelerator's datasheet peaks (an assumption, not a measurement of "
               "that accelerator). extrapolated: outside the measured FLOP range.")
    show(table(title, ["model", "accelerator", "offer", "term", "price", "$/1M prompt", "$/1M generated", "decode MFU",
                       "decode regime", "basis"], rows, caption=caption))


def print_calibrated_article(doc: dict) -> None:
    """The article's inference and training figures beside the same figures at calibrated efficiency."""
    out = console()
    for t in doc["tables"]:
        rows = [(r["label"], quantity(r["article"], r["unit"]), quantity(r["calibrated"], r["unit"]),
                 f"{r['difference']:+.1%}", f"{pct(r['mfu_article'])} → {pct(r['mfu_calibrated'])}", r["regime"],
                 _basis(doc["calibration"]["basis"], r["transferred"])) for r in t["rows"]]
        caption = "Calibrated MFU in the article's FLOP count (2N / 6N). " + " ".join(
            f"{line}." for line in describe_source(t["rows"]))
        out.print(table(t["title"], ["figure", "article", "calibrated", "difference", "MFU", "regime", "basis"], rows,
                        caption=caption))
        out.print()
    a = doc["assumptions"]
    if doc["calibration"]["basis"] == "published":
        out.print(f"Published reference calibrations (`llmecon calibrations`); {a['note']}. Sources:")
        for source in doc["calibration"]["sources"]:
            out.print(f"  {source}", soft_wrap=True)
        if doc.get("published_mfu"):
            out.print()
            out.print(table("Published MFU of the article's models (single points, beside its 46.2%)",
                            ["model", "accelerator", "count", "MFU", "engine", "source"],
                            [(r["model"], r["accelerator"], r["accelerators"], pct(r["mfu"]), r["engine"], r["source"])
                             for r in doc["published_mfu"]]))
    else:
        out.print(f"Calibrated from runs {', '.join(doc['calibration']['run_ids'])} on "
                  f"{', '.join(doc['calibration']['device_names'])}; {a['note']}.")
    for reason in doc["skipped"]:
        warn(f"not calibrated: {reason}")


def _basis(basis: str, transferred: bool) -> str:
    """'measured', 'transferred', 'published' or 'published, transferred'."""
    if basis == "published":
        return "published, transferred" if transferred else "published"
    return "transferred" if transferred else "measured"


def _known(value) -> bool:
    return isinstance(value, (int, float)) and value == value
