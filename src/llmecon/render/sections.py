"""The report's sections, each rendered from what it is given (the page computes nothing new)."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import pandas as pd

from llmecon._version import __version__
from llmecon.calibration.document import Calibration
from llmecon.records.schema import Run
from llmecon.render import figures as F
from llmecon.render.page import Raw, esc, figure, is_num, omitted, para, percent, section, table_html
from llmecon.units import pct, si, spread, usd
from llmecon.vocab import PHASES


def summary(frame: pd.DataFrame, convention: str) -> str:
    rows = F.usable_rows(frame)
    n_bad = int(len(frame) - len(rows))
    mfu_c, mfu_s = f"mfu_{convention}_vs_ceiling", f"mfu_{convention}"

    def best(g, column):
        v = pd.to_numeric(g[column], errors="coerce")
        return v.max() if v.notna().any() else None

    out = []
    for (model, hw, dtype, phase), g in rows.groupby(["model", "hardware", "dtype", "phase"], sort=False):
        tps = pd.to_numeric(g["tokens_per_s"], errors="coerce").dropna()
        if tps.empty:
            continue
        top = g.loc[tps.idxmax()]
        out.append([model, hw, dtype, phase, len(g), si(float(top["tokens_per_s"]), "tok/s"),
                    f"b={int(top['batch_size'])}, L={int(top['seq_len'])}", percent(best(g, mfu_c)),
                    percent(best(g, mfu_s)), percent(best(g, "bandwidth_util_vs_ceiling"))])
    phases = sorted(set(rows["phase"]), key=lambda p: PHASES.index(p) if p in PHASES else 9)
    body = para(f"{len(frame)} measured configuration(s) of {esc(', '.join(sorted(set(frame['model']))))} on "
                f"{esc(', '.join(sorted(set(frame['hardware']))))}; {len(rows)} valid ({esc(', '.join(phases)) or 'none'})"
                + (f", {n_bad} not plotted (see <a href='#rows'>rows not plotted</a>)." if n_bad else ".")
                + f" MFU counts FLOPs under the <code>{esc(convention)}</code> convention.")
    if out:
        body += table_html(["model", "device", "dtype", "phase", "valid rows", "best throughput", "at",
                            f"MFU {convention} (ceiling)", f"MFU {convention} (datasheet)", "bandwidth (ceiling)"], out)
        body += para("Best values per phase. <i>Ceiling</i>: against the GEMM FLOP/s and copy bandwidth measured on "
                     "this device; <i>datasheet</i>: against the vendor's dense peak (— when the device is not on "
                     "the hardware sheet). Bandwidth use is counted for decode only.", "note")
    noisy = rows[rows["warnings"].astype(object).fillna("").astype(str).str.contains("noisy")]
    if len(noisy):
        body += para(f"Noise: {len(noisy)} of {len(rows)} valid row(s) are flagged noisy (their rounds' means spread "
                     "over ±5 % of the median) or very noisy (over ±12.5 %); their numbers are less certain (see "
                     "<a href='#measurements'>every measurement</a>).", "omitted")
    return section("summary", "Key numbers", body)


def measurements(frame: pd.DataFrame) -> str:
    """Every configuration with its noise and verdict: the numbers the figures are drawn from."""
    frame = frame.sort_values(["model", "hardware", "phase", "seq_len", "batch_size"])
    rows = []
    for _, r in frame.iterrows():
        text = r["warnings"] if isinstance(r["warnings"], str) else ""
        warnings = "; ".join(w for w in text.split("; ") if w and w != "dirty_build")
        verdict = r["reason"] if isinstance(r["reason"], str) else (warnings or "ok")
        rows.append([r["model"], r["hardware"], r["phase"], r["batch_size"], r["seq_len"], r["status"],
                     si(r["tokens_per_s"], "tok/s") if is_num(r["tokens_per_s"]) else None,
                     si(r["step_time_s"], "s") if is_num(r["step_time_s"]) else None,
                     spread(None if pd.isna(r["step_time_spread"]) else float(r["step_time_spread"]),
                            None if pd.isna(r["n_rounds"]) else int(r["n_rounds"])), verdict])
    body = table_html(["model", "device", "phase", "batch", "seq_len", "status", "tokens/s", "step", "noise",
                       "verdict"], rows)
    body += para("Step: the median over rounds of each round's mean step time (rounds interleave the configurations, "
                 "so a burst of other work costs one round of each). Noise: half the range of the round means over "
                 "their median. Verdict: why a row is not valid, else what to be wary of.", "note")
    return section("measurements", "Every measurement", body)


def utilization(frame: pd.DataFrame, convention: str) -> str:
    body = para("How much of the machine each workload used, as the batch grows. <b>MFU</b> is the model FLOPs a "
                "step needs divided by its time and the peak; <b>bandwidth use</b> is the bytes a decode step must "
                "read (weights and KV cache) divided by its time and the memory bandwidth. Solid lines are against "
                "the ceilings measured on this device (a large GEMM, a large copy); dashed lines against the "
                "datasheet, when the device is on the hardware sheet. Decode usually climbs with the batch "
                "because the weights are read once per step whatever the batch.")
    title = "Utilization against batch size"
    rows = F.usable_rows(frame)
    if rows.empty:
        return section("utilization", title, body + omitted("there are no valid measurements (status ok and valid) "
                                                            "to plot."))
    for (model, hw, dtype), g in rows.groupby(["model", "hardware", "dtype"], sort=False):
        name = f"{model} on {hw}, {dtype} ({convention} FLOPs)"
        body += figure(lambda g=g, name=name: F.efficiency_vs_batch(g, convention, title=name), "utilization")
    return section("utilization", title, body)


def roofline(frame: pd.DataFrame, convention: str) -> str:
    body = para("Where each measurement sits against the machine's two limits. The x-axis is arithmetic intensity, "
                "the FLOPs a step does per byte it must move; the roofs are the peak FLOP/s (flat) and the memory "
                "bandwidth (sloped): a point under the sloped roof is memory-bound, under the flat one "
                "compute-bound. Decode steps carry their counted bytes (weights and KV cache); prefill and training "
                "steps have no byte count in the records, so they are drawn hollow at the bytes of reading the "
                "weights once (a lower bound, so their true intensity is at most this).")
    rows = F.usable_rows(frame)
    if rows.empty:
        return section("roofline", "Roofline", body + omitted("there are no valid measurements to plot."))
    counted = pd.to_numeric(rows["bytes_per_step"], errors="coerce")
    rows = rows.assign(bytes_estimated=counted.isna(), bytes_per_step=counted.fillna(rows["weight_bytes"]))
    for (hw, dtype), g in rows.groupby(["hardware", "dtype"], sort=False):
        name = f"Roofline: {hw}, {dtype}"
        body += figure(lambda g=g, name=name: F.roofline(g, convention, title=name), "roofline")
    return section("roofline", "Roofline", body)


def calibration(calib: Calibration | None, source: str | None, error: str | None, predicted: pd.DataFrame | None,
                missing: int) -> str:
    title = "Calibration: measured against predicted"
    intro = para("The calibration fits, per accelerator, dtype and phase, one step-time model: "
                 "<code>t = F/(P·η<sub>compute</sub>) + B/(W·η<sub>memory</sub>) + t<sub>0</sub> + L·τ</code>, "
                 "where F is the step's FLOPs, B the bytes it reads (decode only), P and W the reference peaks, "
                 "t<sub>0</sub> the per-step overhead (Python, launches, small ops) and τ the overhead each of the "
                 "model's L decoder layers adds (fitted only when the runs hold models of two or more depths). Its "
                 "error is measured on what the fit did not see: each shape predicted by a fit without it, and, "
                 "with two or more models, each model predicted by a fit on the others — the error that applies to "
                 "an estimate for a model not measured here. The figure puts every valid measurement against the "
                 "model's prediction: on the line is perfect; filled points come from runs the calibration was not "
                 "fitted on.")
    if calib is None:
        why = (f"the calibration could not be fitted: {esc(error)}" if error else
               "no calibration was given (fit one with <code>llmecon calibrate RUN -o calibration.json</code> and "
               "pass <code>--calibration calibration.json</code>).")
        return section("calibration", title, intro + omitted(why))
    rows = []
    for f in calib.fits:
        ridge = f.regime_boundaries.get("ridge_flops_per_byte")
        by_model = f.heldout_by_model
        rows.append([f.hardware, f.dtype, f.phase, f.n_rows, len(f.models), percent(f.eta_compute),
                     percent(f.eta_memory), si(f.t0_s, "s"),
                     si(f.tau_s_per_layer, "s") if f.tau_s_per_layer is not None else "—",
                     f"{si(f.peak_flops_per_s, 'FLOP/s')} ({f.peak_flops_source.replace('_', ' ')})",
                     f"{pct(f.heldout.median_rel_error)} / {pct(f.heldout.max_rel_error)}",
                     f"{pct(by_model.median_rel_error)} / {pct(by_model.max_rel_error)}" if by_model else "—",
                     f"{ridge:.3g} FLOP/B" if is_num(ridge) else "—"])
    conv = esc(calib.flop_convention)
    body = intro + table_html(["device", "dtype", "phase", "rows", "models", f"η compute ({conv} FLOPs)", "η memory",
                               "overhead t0", "per layer τ", "reference peak", "held-out by shape (median / max)",
                               "held-out by model (median / max)", "ridge"], rows)
    body += para(f"F counts FLOPs in the <code>{conv}</code> convention, so η<sub>compute</sub> is an MFU of "
                 f"{conv} FLOPs; estimates from this calibration count FLOPs the same way. The threshold that "
                 "refuses a fit applies to the error by shape; an error by model above it is a caution below.",
                 "note")
    warned = [f"{f.key}: {w}" for f in calib.fits for w in f.warnings]
    if warned:   # e.g. an η of 100 % that is a bound the rows did not resolve, not a measured efficiency
        body += para("Caution: " + "; ".join(esc(w) for w in warned) + ".", "omitted fit-warning")
    if calib.refused:
        body += para("Not fitted: " + "; ".join(esc(r.describe()) for r in calib.refused), "omitted")
    text = "held-out median error by shape: " + ", ".join(
        f"{f.phase} {f.heldout.median_rel_error:.1%}" for f in calib.fits)
    if any(f.heldout_by_model for f in calib.fits):
        text += "; by model: " + ", ".join(f"{f.phase} {f.heldout_by_model.median_rel_error:.1%}"
                                           for f in calib.fits if f.heldout_by_model)
    note = f"{missing} valid row(s) have no fit in this calibration and are not shown." if missing else None
    body += figure(lambda: F.measured_vs_predicted(predicted, error_text=text), "measured_vs_predicted", note)
    return section("calibration", title, body)


def costs(calib: Calibration | None, table: pd.DataFrame | None, notes: Sequence[str], term: str) -> str:
    """The cost table (estimate.costs.cost_table: the same rows as costs.csv) as a figure per model and a table."""
    title = "$ per 1M tokens across the price sheet"
    intro = para("What a million tokens would cost on each accelerator of the price sheet (its cheapest "
                 f"<b>{esc(term.replace('_', '-'))}</b> offer), at the efficiency measured here: the calibration "
                 "predicts the step time on that accelerator, and the cost is that time at the offer's price per "
                 "accelerator-hour. Where the accelerator is not the one measured, the measured efficiencies and "
                 "overhead are <b>transferred</b> to its datasheet peaks (hatched bars, marked <i>transfer</i>): an "
                 "assumption that the same software reaches the same share of another chip's peak, not a measurement. "
                 "These are the rows of <code>costs.csv</code>.")
    if calib is None or table is None:
        return section("costs", title, intro + omitted("pricing at measured efficiency needs a calibration."))
    body = intro
    if len(table) and table["transfer"].any():
        measured = sorted({f"{f.hardware} ({f.dtype} {f.phase})" for f in calib.fits if f.phase in set(table["phase"])})
        body += para(f"Every bar and row marked <i>transfer</i> uses the efficiencies and overhead measured on "
                     f"<b>{esc('; '.join(measured))}</b>, scaled to that accelerator's datasheet peaks. Read it as a "
                     "what-if, not as a measurement of that accelerator.", "omitted transfer-note")
    for model, part in (table.groupby("model", sort=False) if len(table) else []):
        work = part.drop_duplicates("phase")
        body += para(f"<code>{esc(model)}</code>: " + "; ".join(
            f"{esc(r['phase'])} at batch {int(r['batch_size'])} and length {int(r['context_len'])}"
            for _, r in work.iterrows()) + f", {esc(part['dtype'].iloc[0])}.")
        labelled = part.assign(label=[f"{a}  ({p}, {t.replace('_', '-')}, {usd(u)}/h)" for a, p, t, u in zip(
            part["accelerator_id"], part["provider"], part["term"], part["usd_per_accelerator_hour"])])
        body += figure(lambda d=labelled, m=model: F.cost_per_million_tokens(
            d, title=f"$ per 1M tokens: {m} at measured efficiency, cheapest {term.replace('_', '-')} offer"), "costs")
        body += _cost_rows(part, calib.flop_convention)
    if not len(table):
        body += omitted("there is no offer for which the calibration gives a cost.")
    if notes:
        body += para("Not priced: " + esc("; ".join(distinct_reasons(notes))) + ".", "omitted")
    return section("costs", title, body)


def _cost_rows(part: pd.DataFrame, convention: str) -> str:
    cols = ["accelerator", "offer", "term", "per accelerator", "phase", "$ / 1M tokens", "tokens/s",
            f"MFU ({convention} FLOPs)", "regime", "basis"]
    rows = [[r["accelerator_id"], f"{r['provider']} {r['instance']}", r["term"].replace("_", "-"),
             usd(r["usd_per_accelerator_hour"]) + "/h", r["phase"], usd(r["usd_per_1m_tokens"]),
             si(r["tokens_per_s_per_accelerator"], "tok/s"), percent(r["effective_mfu"]), r["regime"],
             Raw(esc("transfer" if r["transfer"] else "measured")
                 + ("<span class='badge warn'>extrapolated</span>" if r["extrapolated"] else ""))]
            for _, r in part.iterrows()]
    return table_html(cols, rows, row_classes=["transfer" if t else "" for t in part["transfer"]])


def distinct_reasons(skipped: Sequence[str], limit: int = 4) -> list[str]:
    """'model phase on price: reason' lines grouped by reason, with how many offers each covers."""
    groups: dict[str, int] = {}
    for line in skipped:
        reason = line.split(": ", 1)[1] if ": " in line else line
        groups[reason] = groups.get(reason, 0) + 1
    out = [f"{reason} ({n} offer{'s' if n > 1 else ''})" if n > 1 else reason for reason, n in groups.items()]
    return out[:limit] + ([f"and {len(out) - limit} more"] if len(out) > limit else [])


def _change(new, old) -> str:
    """+35%, -17%, or x110 when the ratio is large."""
    if not (is_num(new) and is_num(old) and old > 0):
        return "—"
    ratio = new / old
    return f"×{ratio:.3g}" if ratio >= 3 else f"{ratio - 1:+.0%}"


ARTICLE_ROWS = {  # estimate.article keys -> (short label, panel)
    "inference.aws.usd_per_1k_tokens": ("GPT-3 on AWS A100 (p4d, 1-yr)", "$ per 1K tokens"),
    "inference.tpu.usd_per_1k_tokens": ("GPT-3 on TPU v4 (1-yr)", "$ per 1K tokens"),
    "training.gpt3.usd": ("GPT-3", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.gopher.usd": ("Gopher", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.mt_nlg.usd": ("MT-NLG", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.palm.usd": ("PaLM", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.chinchilla.usd": ("Chinchilla", "$ per training run, TPU v4 at $2.03/chip-h"),
}


def article_frame(doc: Mapping) -> pd.DataFrame:
    """The calibrated article's headline dollar figures as the rows `figures.article_vs_calibrated` draws."""
    out = []
    for table in doc.get("tables") or []:
        for r in table.get("rows") or []:
            if r["key"] not in ARTICLE_ROWS:
                continue
            item, unit = ARTICLE_ROWS[r["key"]]
            out.append({"key": r["key"], "item": item, "unit": unit, "label": r["label"],
                        "article_usd": r["article"], "calibrated_usd": r["calibrated"],
                        "article_mfu": r.get("mfu_article"), "calibrated_mfu": r.get("mfu_calibrated"),
                        "transfer": bool(r.get("transferred")), "extrapolated": bool(r.get("extrapolated")),
                        "regime": r.get("regime"), "source": r.get("source")})
    return pd.DataFrame(out)


def article(doc: Mapping | None, error: str | None) -> str:
    title = "The article against measured efficiency"
    intro = para("The 2023 article priced GPT-3 with assumed utilizations: 21.3 % MFU for inference (2N FLOPs per "
                 "token) and 46.2 % for training (6N). Here the same scenarios are priced with the step time this "
                 "calibration predicts, on the article's accelerators (A100, TPU v4) and at the article's model "
                 "sizes; the percentages on the bars are the utilization each implies. A calibration measured "
                 "elsewhere is <b>transferred</b> to those accelerators: a what-if, not a measurement of GPT-3.")
    if doc is None:
        return section("article", title, intro + omitted(esc(error) if error else
                                                         "comparing with the article needs a calibration."))
    rows = article_frame(doc)
    a = doc.get("assumptions") or {}
    inf, tr = a.get("inference") or {}, a.get("training") or {}
    body = intro + para(f"Workload: GPT-3 decoding at batch {esc(inf.get('batch_size'))} and context "
                        f"{esc(inf.get('context_len'))}; training steps of {esc(tr.get('batch_size'))} × "
                        f"{esc(tr.get('seq_len'))} tokens; {esc(a.get('dtype'))}. "
                        f"{esc(str(a.get('note') or '').capitalize())}.")
    if doc.get("basis"):
        body += para("Basis of the measured-efficiency figures: " + esc("; ".join(doc["basis"])) + ".",
                     "omitted transfer-note")
    body += figure(lambda: F.article_vs_calibrated(rows), "article")
    if not rows.empty:
        body += table_html(
            ["scenario", "article", "article MFU", "at measured efficiency", "implied MFU", "change", "regime", "basis"],
            [[r["label"], usd(r["article_usd"]), percent(r["article_mfu"]), usd(r["calibrated_usd"]),
              percent(r["calibrated_mfu"]), _change(r["calibrated_usd"], r["article_usd"]), r["regime"],
              Raw(esc("transfer" if r["transfer"] else "measured")
                  + ("<span class='badge warn'>extrapolated</span>" if r["extrapolated"] else ""))]
             for _, r in rows.iterrows()],
            row_classes=["transfer" if t else "" for t in rows["transfer"]])
    if doc.get("skipped"):
        body += para("Not priced: " + esc("; ".join(doc["skipped"])), "omitted")
    return section("article", title, body)


def serving(plan: Mapping | None, error: str | None) -> str:
    title = "Serving: cost against time per output token"
    intro = para("How many requests this device could serve at once, and what each output token then costs, from the "
                 "calibration's prefill and decode times in the steady state of continuous batching (docs/serving.md; "
                 "`llmecon plan serve` for your own lengths, targets and price). Costs are at $1 per "
                 "accelerator-hour: they scale with the price.")
    if plan is None:
        return section("serving", title, intro + omitted(esc(error) if error else "a serving plan needs a calibration "
                                                                                   "with prefill and decode fits."))
    lengths, best = plan["lengths"], plan.get("plan")
    body = intro + para(f"{esc(plan['model'])} on {esc(plan['hardware_id'])}: requests of "
                        f"{lengths['mean_prompt_tokens']:.0f} prompt and {lengths['mean_output_tokens']:.0f} output "
                        "tokens." + (f" The plan: {best['concurrency']:,} requests in flight, TPOT "
                                     f"{esc(si(best['tpot_s'], 's'))}, bound by {esc(plan['binding'])}." if best else
                                     " No concurrency meets the target."))
    body += figure(lambda: F.serving_plan(plan), "serving")
    body += table_html(["requests in flight", "TTFT p90", "TPOT", "output tokens/s", "$ per 1M output tokens", "plan"],
                       [[f"{r['concurrency']:,}", si(r["ttft_p90_s"], "s"), si(r["tpot_s"], "s"),
                         f"{r['output_tokens_per_s']:,.0f}", usd(r["usd_per_1m_output_tokens"]),
                         "▶" if r["plan"] else ""] for r in plan["rows"]])
    return section("serving", title, body)


def scaling(frame: pd.DataFrame) -> str:
    """The runs spread over several devices: throughput, utilisation per device, scaling against one device, how
    far the ranks were apart and what a step communicated. Empty when every run used one device."""
    if "world_size" not in frame or not frame["world_size"].fillna(1).gt(1).any():
        return ""
    spread_rows = frame[frame["world_size"].fillna(1).gt(1)].sort_values(
        ["model", "phase", "seq_len", "batch_size", "world_size"])
    rows = []
    for _, r in spread_rows.iterrows():
        num = lambda v: None if pd.isna(v) else float(v)  # noqa: E731
        rows.append([r["model"], r["phase"], f"{r['parallel']} x{int(r['world_size'])}", int(r["nnodes"]),
                     r["batch_size"], r["seq_len"], r["status"],
                     si(num(r["tokens_per_s"]), "tok/s") if is_num(r["tokens_per_s"]) else None,
                     percent(num(r["mfu_executed_vs_ceiling"])), percent(num(r["scaling_efficiency"])),
                     r["scaling_baseline"], percent(num(r["rank_imbalance"])),
                     si(num(r["comm_bytes_per_step"]), "B") if is_num(r["comm_bytes_per_step"]) else None,
                     si(num(r["allreduce_busbw_bytes_per_s"]), "B/s")
                     if is_num(r["allreduce_busbw_bytes_per_s"]) else None])
    body = table_html(["model", "phase", "devices", "nodes", "batch", "seq_len", "status", "tokens/s (job)",
                       "MFU per device (ceiling)", "scaling", "baseline", "rank imbalance", "communicated per step",
                       "all-reduce busbw"], rows)
    body += para("Each configuration spread over the ranks of a torchrun job: batch per rank for ddp and fsdp, one "
                  "shared batch for tp. Tokens/s is the job's, its step the slowest rank's. Scaling: tokens/s over "
                  "devices x the same configuration's on one device (baseline: from the same run, or the run named). "
                  "Rank imbalance: the slowest rank's step over the fastest's, minus one. Communicated: the bytes "
                  "one step's collectives moved on rank 0 (nccl-tests' full-buffer sizes); busbw: the all-reduce "
                  "bus bandwidth measured at the start of the run, at its largest size.", "note")
    return section("scaling", "Beyond one device", body)


def not_plotted(frame: pd.DataFrame, problems: Sequence[str]) -> str:
    bad = frame.drop(index=F.usable_rows(frame).index)
    if "world_size" in bad:  # valid runs spread over several devices are in the scaling section
        bad = bad[~(bad["world_size"].fillna(1).gt(1) & bad["status"].eq("ok") & bad["valid"].astype(bool))]
    if bad.empty and not problems:
        return ""
    body = ""
    if not bad.empty:
        body += para("Configurations that did not give a valid measurement; they are in no figure or fit.")
        rows = [[r["model"], r["phase"], r["batch_size"], r["seq_len"], r["status"],
                 r["reason"] if isinstance(r["reason"], str) else ("invalid timing" if r["status"] == "ok" else "")]
                for _, r in bad.iterrows()]
        body += table_html(["model", "phase", "batch", "seq_len", "status", "reason"], rows)
    if problems:
        body += "<h3>Files the loader could not read</h3><ul class='problems'>" + "".join(
            f"<li>{esc(p)}</li>" for p in problems) + "</ul>"
    return section("rows", "Rows not plotted", body)


def provenance(frame: pd.DataFrame, runs: Mapping[str, Run], calib: Calibration | None, calib_source: str | None,
               sources: Iterable[str], now: str) -> str:
    rows, notes, ceilings = [], [], []
    for rid in sorted(set(frame["run_id"])):
        run = runs.get(rid)
        if run is None:
            rows.append([rid, None, None, None, int((frame["run_id"] == rid).sum()), None, None])
            continue
        env, dev = run.environment, run.device
        git = env.git_sha[:10] + (" (dirty)" if env.git_dirty else "") if env.git_sha else None
        versions = ", ".join(f"{k} {getattr(env, k)}" for k in ("python", "torch", "transformers", "cuda", "driver")
                             if getattr(env, k))
        if dev.hardware_id is None and dev.hardware_match_reason:
            notes.append(f"{rid}: {dev.hardware_match_reason}")
        rows.append([rid, run.created_utc[:19].replace("T", " "), dev.name, dev.hardware_id or "not on the sheet",
                     int((frame["run_id"] == rid).sum()), versions or None, git])
        ceilings += [[rid, dtype, si(c.gemm_flops_per_s, "FLOP/s"), si(c.copy_bytes_per_s, "B/s"), c.gemm_shape]
                     for dtype, c in run.ceilings.items()]
    body = table_html(["run", "created (UTC)", "device", "sheet id", "records", "versions", "git"], rows)
    if notes:
        body += para(esc("; ".join(notes)), "note")
    if ceilings:
        body += "<h3>Ceilings measured on the device</h3>" + table_html(
            ["run", "dtype", "GEMM", "copy bandwidth", "GEMM shape"], ceilings)
    kv = [("report", f"llmecon {__version__}, {now}"), ("runs", ", ".join(map(str, sources)) or "(in memory)")]
    if calib is not None:
        kv += [("calibration", calib_source or "(in memory)"),
               ("calibration written", f"{calib.created_utc} by llmecon {calib.tool_version}"),
               ("FLOP convention", calib.flop_convention),
               ("calibrated on runs", ", ".join(calib.provenance.run_ids)),
               ("calibration sources", ", ".join(calib.provenance.sources))]
    else:
        kv.append(("calibration", "none given"))
    body += "<h3>This page</h3><dl class='kv'>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in kv) + "</dl>"
    return section("provenance", "Provenance", body)
