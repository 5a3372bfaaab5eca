"""One self-contained HTML page from bench runs (and, optionally, a calibration).

`build_report(runs, out_dir, calibration=...)` loads the runs, draws the figures (inline SVG, so the
page works offline and from a mail attachment), writes `out_dir/index.html` and returns its path.
`render_report(frame, ...)` does the same from a tidy frame already in memory and returns the HTML.

Each figure has a short explanation above it; a figure that cannot be drawn is replaced by one
sentence saying why. Tables give the key numbers, the calibration, the costs and the provenance
(runs, device, versions, calibration file).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import math
import os
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from llmecon import __version__
from llmecon.errors import UserError
from llmecon.report import figures as F
from llmecon.units import pct, si, usd

DEFAULT_CONVENTION = "executed"


# ----------------------------------------------------------------------------------------------
# small HTML helpers


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, row_classes: Sequence[str] | None = None) -> str:
    """A <table>; cells are escaped; numeric cells (or strings starting with a digit/$) right-aligned."""
    out = ["<div class='table-wrap'><table><thead><tr>"]
    out += [f"<th>{esc(c)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    rows = list(rows)
    for i, row in enumerate(rows):
        cls = f" class='{esc(row_classes[i])}'" if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>")
        for v in row:
            if isinstance(v, _Raw):
                out.append(f"<td>{v.html}</td>")
                continue
            text = "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else str(v)
            numeric = _is_num(v) or (isinstance(v, str) and text[:1] in "$0123456789" and " · " not in text)
            out.append(f"<td class='num'>{esc(text)}</td>" if numeric else f"<td>{esc(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


class _Raw:
    """Pre-escaped HTML for a table cell."""

    def __init__(self, html_text: str):
        self.html = html_text


def _section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{esc(anchor)}'><h2>{esc(title)}</h2>{body}</section>"


def _p(text: str, cls: str = "explain") -> str:
    return f"<p class='{cls}'>{text}</p>"


def _figure(make: Callable[[], Any], name: str, caption: str | None = None) -> str:
    """The figure inline, or the sentence saying why it is omitted."""
    try:
        fig = make()
    except F.FigureOmitted as exc:
        return _omitted(esc(exc))
    svg = F.to_svg(fig)
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure class='plot' data-figure='{esc(name)}'>{svg}{cap}</figure>"


def _omitted(reason_html: str) -> str:
    """The sentence that stands in for a figure that cannot be drawn (counted by the page's script)."""
    return f"<p class='omitted figure-omitted'>Figure omitted: {reason_html}</p>"


def _fmt_pct(v) -> str:
    """Percent with enough digits for small utilizations (0.012%, not 0.0%)."""
    if not _is_num(v):
        return "—"
    if v != 0 and abs(v) < 0.001:
        return f"{100 * v:.2g}%"
    return pct(v)


# ----------------------------------------------------------------------------------------------
# derived frames


def with_hardware(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a `hardware` column: the sheet id when known, else the reported device name
    (the key the calibration uses)."""
    hw = [(h if isinstance(h, str) and h else (d if isinstance(d, str) and d else "unknown device"))
          for h, d in zip(frame["hardware_id"], frame["device_name"])]
    return frame.assign(hardware=hw)


def with_estimated_bytes(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows without a byte count (prefill, train) get the weights read once per step, a lower bound on
    the bytes moved, flagged `bytes_estimated`, so they can stand on the roofline as hollow points."""
    from llmecon.costmodel.architecture import load_model_shape
    from llmecon.costmodel.memory import weight_bytes

    out = frame.copy()
    est = pd.Series(False, index=out.index)
    values = pd.to_numeric(out["bytes_per_step"], errors="coerce") if "bytes_per_step" in out else pd.Series(float("nan"), index=out.index)
    cache: dict[tuple, float | None] = {}
    for i, row in out.iterrows():
        if _is_num(values[i]) and values[i] > 0:
            continue
        key = (row["model"], row["dtype"])
        if key not in cache:
            try:
                cache[key] = float(weight_bytes(load_model_shape(row["model"]), row["dtype"]))
            except (UserError, OSError, KeyError, ValueError):
                cache[key] = None
        if cache[key]:
            values[i] = cache[key]
            est[i] = True
    return out.assign(bytes_per_step=values, bytes_estimated=est)


def predicted_points(frame: pd.DataFrame, calib: Mapping, convention: str) -> tuple[pd.DataFrame, int]:
    """Valid rows with the calibration's predicted step time; (points, rows the calibration cannot predict)."""
    from llmecon.calibrate import predict

    rows = with_hardware(F.usable_rows(frame))
    fitted_runs = set((calib.get("provenance") or {}).get("run_ids") or [])
    pts, missing = [], 0
    for _, r in rows.iterrows():
        flops = r.get(f"flops_per_step_{convention}")
        b = r.get("bytes_per_step")
        try:
            t, regime = predict(calib, r["hardware"], r["dtype"], r["phase"], float(flops),
                                float(b) if _is_num(b) else None)
        except (UserError, TypeError, ValueError):
            missing += 1
            continue
        pts.append({"phase": r["phase"], "step_time_s": r["step_time_s"], "predicted_step_time_s": t,
                    "regime": regime, "held_out": r["run_id"] not in fitted_runs})
    return pd.DataFrame(pts), missing


def heldout_text(calib: Mapping) -> str:
    parts = [f"{f['phase']} {f['heldout']['median_rel_error']:.1%}" for f in calib["fits"]]
    return "held-out median error (leave one shape out): " + ", ".join(parts)


# ----------------------------------------------------------------------------------------------
# sections


def _summary_section(frame: pd.DataFrame, convention: str) -> str:
    rows = F.usable_rows(frame)
    fw = with_hardware(frame)
    n_bad = int(len(frame) - len(rows))
    mfu_c, mfu_s = f"mfu_{convention}_vs_ceiling", f"mfu_{convention}"
    out = []
    for (model, hw, dtype, phase), g in with_hardware(rows).groupby(["model", "hardware", "dtype", "phase"], sort=False):
        tps = pd.to_numeric(g["tokens_per_s"], errors="coerce").dropna()
        if tps.empty:
            continue
        best = g.loc[tps.idxmax()]
        mc = pd.to_numeric(g.get(mfu_c), errors="coerce") if mfu_c in g else pd.Series(dtype=float)
        ms = pd.to_numeric(g.get(mfu_s), errors="coerce") if mfu_s in g else pd.Series(dtype=float)
        bw = pd.to_numeric(g["bandwidth_util_vs_ceiling"], errors="coerce") if "bandwidth_util_vs_ceiling" in g else pd.Series(dtype=float)
        out.append([model, hw, dtype, phase, len(g), si(float(best["tokens_per_s"]), "tok/s"),
                    f"b={int(best['batch_size'])}, L={int(best['seq_len'])}",
                    _fmt_pct(mc.max() if mc.notna().any() else None), _fmt_pct(ms.max() if ms.notna().any() else None),
                    _fmt_pct(bw.max() if bw.notna().any() else None)])
    phases = sorted(set(rows["phase"]), key=lambda p: F.PHASES.index(p) if p in F.PHASES else 9)
    devices = sorted(set(fw["hardware"]))
    models = sorted(set(frame["model"]))
    body = _p(f"{len(frame)} measured configuration(s) of {esc(', '.join(models))} on {esc(', '.join(devices))}; "
              f"{len(rows)} valid ({esc(', '.join(phases)) or 'none'})"
              + (f", {n_bad} not plotted (see <a href='#rows'>rows not plotted</a>)." if n_bad else ".")
              + f" MFU counts FLOPs under the <code>{esc(convention)}</code> convention.")
    if out:
        body += table_html(["model", "device", "dtype", "phase", "valid rows", "best throughput", "at",
                            "MFU (ceiling)", "MFU (datasheet)", "bandwidth (ceiling)"], out)
        body += _p("Best values per phase. <i>Ceiling</i>: against the GEMM FLOP/s and copy bandwidth measured on "
                   "this device; <i>datasheet</i>: against the vendor's dense peak (— when the device is not on "
                   "the hardware sheet). Bandwidth use is counted for decode only.", "note")
    return _section("summary", "Key numbers", body)


def _utilization_section(frame: pd.DataFrame, convention: str) -> str:
    body = _p("How much of the machine each workload used, as the batch grows. <b>MFU</b> is the model FLOPs a "
              "step needs divided by its time and the peak; <b>bandwidth use</b> is the bytes a decode step must "
              "read (weights and KV cache) divided by its time and the memory bandwidth. Solid lines are against "
              "the ceilings measured on this device (a large GEMM, a large copy); dashed lines against the "
              "datasheet, when the device is on the hardware sheet. Decode usually climbs with the batch "
              "because the weights are read once per step whatever the batch.")
    rows = F.usable_rows(frame)
    if rows.empty:
        return _section("utilization", "Utilization against batch size",
                        body + _omitted("there are no valid measurements (status ok and valid) to plot."))
    for (model, hw, dtype), g in with_hardware(rows).groupby(["model", "hardware", "dtype"], sort=False):
        title = f"{model} on {hw}, {dtype} ({convention} FLOPs)"
        body += _figure(lambda g=g, title=title: F.efficiency_vs_batch(g, convention, title=title), "utilization")
    return _section("utilization", "Utilization against batch size", body)


def _roofline_section(frame: pd.DataFrame, convention: str) -> str:
    body = _p("Where each measurement sits against the machine's two limits. The x-axis is arithmetic intensity, "
              "the FLOPs a step does per byte it must move; the roofs are the peak FLOP/s (flat) and the memory "
              "bandwidth (sloped): a point under the sloped roof is memory-bound, under the flat one compute-bound. "
              "Decode steps carry their counted bytes (weights and KV cache); prefill and training steps have no "
              "byte count in the records, so they are drawn hollow at the bytes of reading the weights once "
              "(a lower bound, so their true intensity is at most this).")
    rows = F.usable_rows(frame)
    if rows.empty:
        return _section("roofline", "Roofline", body + _omitted("there are no valid measurements to plot."))
    rows = with_estimated_bytes(with_hardware(rows))
    for (hw, dtype), g in rows.groupby(["hardware", "dtype"], sort=False):
        title = f"Roofline: {hw}, {dtype}"
        body += _figure(lambda g=g, title=title: F.roofline(g, convention, title=title), "roofline")
    return _section("roofline", "Roofline", body)


def _calibration_section(frame: pd.DataFrame, calib: Mapping | None, source: str | None, convention: str,
                         error: str | None = None) -> str:
    intro = ("The calibration fits, per accelerator, dtype and phase, one step-time model: "
             "<code>t = F/(P·η<sub>compute</sub>) + B/(W·η<sub>memory</sub>) + t<sub>0</sub></code>, "
             "where F is the step's FLOPs, B the bytes it reads (decode only), P and W the reference peaks and "
             "t<sub>0</sub> the per-step overhead (Python, launches, small ops). Its error is measured on shapes "
             "held out of the fit. The figure puts every valid measurement against the model's prediction: "
             "on the line is perfect; filled points come from runs the calibration was not fitted on.")
    if calib is None and error:
        return _section("calibration", "Calibration: measured against predicted",
                        _p(intro) + _omitted(f"the calibration could not be fitted: {esc(error)}"))
    if calib is None:
        return _section("calibration", "Calibration: measured against predicted",
                        _p(intro) + _omitted("no calibration was given (fit one with "
                                       "<code>llmecon calibrate RUN -o calibration.json</code> and pass "
                                       "<code>--calibration calibration.json</code>)."))
    rows = []
    for f in calib["fits"]:
        b = f.get("regime_boundaries") or {}
        rows.append([f["hardware"], f["dtype"], f["phase"], f["n_rows"],
                     _fmt_pct(f.get("eta_compute")), _fmt_pct(f.get("eta_memory")), si(f["t0_s"], "s"),
                     f"{si(f['peak_flops_per_s'], 'FLOP/s')} ({f['peak_flops_source'].replace('_', ' ')})",
                     f"{pct(f['heldout']['median_rel_error'])} / {pct(f['heldout']['max_rel_error'])}",
                     f"{b['ridge_flops_per_byte']:.3g} FLOP/B" if _is_num(b.get("ridge_flops_per_byte")) else "—"])
    body = _p(intro) + table_html(["device", "dtype", "phase", "rows", "η compute", "η memory", "overhead t0",
                                   "reference peak", "held-out error (median / max)", "ridge"], rows)
    warned = [f"{f['hardware']} {f['dtype']} {f['phase']}: {w}" for f in calib["fits"] for w in f.get("warnings") or ()]
    if warned:   # e.g. an η of 100 % that is a bound the rows did not resolve, not a measured efficiency
        body += _p("Caution: " + "; ".join(esc(w) for w in warned) + ".", "omitted fit-warning")
    refused = calib.get("refused") or []
    if refused:
        body += _p("Not fitted: " + "; ".join(esc(f"{r['hardware']} {r['dtype']} {r['phase']}: {r['refused']}")
                                              for r in refused), "omitted")
    points, missing = predicted_points(frame, calib, convention)
    note = f"{missing} valid row(s) have no fit in this calibration and are not shown." if missing else None
    body += _figure(lambda: F.measured_vs_predicted(points, error_text=heldout_text(calib)), "measured_vs_predicted", note)
    return _section("calibration", "Calibration: measured against predicted", body)


def _cost_section(frame: pd.DataFrame, calib: Mapping | None) -> tuple[str, pd.DataFrame | None]:
    intro = ("What a million tokens of the measured model would cost on each accelerator of the price sheet (its "
             "cheapest offer), at the efficiency measured here: the calibration predicts the step time on that "
             "accelerator, and the cost is that time at the offer's price per accelerator-hour. Where the "
             "accelerator is not the one measured, the measured efficiencies and overhead are <b>transferred</b> to "
             "its datasheet peaks (hatched bars, marked <i>transfer</i>): an assumption that the same software "
             "reaches the same share of another chip's peak, not a measurement.")
    title = "$ per 1M tokens across the price sheet"
    if calib is None:
        return _section("costs", title, _p(intro) + _omitted("pricing at measured efficiency needs a "
                                                       "calibration.")), None
    from llmecon.costmodel.prices import load_prices

    models = list(dict.fromkeys(F.usable_rows(frame)["model"])) or list(dict.fromkeys(frame["model"]))
    prices = load_prices()
    body, all_costs, skipped = _p(intro), [], []
    for model in models[:MAX_PRICED_MODELS]:
        html_part, costs, model_skipped = _cost_block(calib, model, prices)
        body += html_part
        all_costs.append(costs)
        skipped += model_skipped
    if len(models) > MAX_PRICED_MODELS:
        body += _p(f"Not priced here: {esc(', '.join(models[MAX_PRICED_MODELS:]))} (see costs.csv from llmecon run, "
                   "or llmecon estimate --calibration).", "note")
    if skipped:
        body += _p("Not priced: " + esc("; ".join(_distinct_reasons(skipped))) + ".", "omitted")
    return _section("costs", title, body), pd.concat(all_costs, ignore_index=True) if all_costs else None


MAX_PRICED_MODELS = 3


def _cost_block(calib: Mapping, model: str, prices) -> tuple[str, pd.DataFrame, list[str]]:
    """The cost figure and table of one measured model."""
    from llmecon.report.costs import cheapest_per_accelerator, cost_rows

    costs, skipped = cost_rows(calib, [model], prices)
    body = ""
    best = cheapest_per_accelerator(costs)
    if not best.empty:
        best = best.assign(label=[f"{a}  ({p}, {t.replace('_', '-')}, {usd(u)}/h)" for a, p, t, u in
                                  zip(best["accelerator_id"], best["provider"], best["term"], best["usd_per_accelerator_hour"])])
        w = best.drop_duplicates("phase").set_index("phase")
        body += _p("Workload: " + "; ".join(f"{esc(ph)} at batch {int(r['batch_size'])} and context {int(r['context_len'])}"
                                             for ph, r in w.iterrows())
                   + f", in {esc(best['dtype'].iloc[0])}, for <code>{esc(model)}</code> (the largest shapes measured); "
                   f"{len(prices)} offers on {best['accelerator_id'].nunique()} priced accelerators.")
    if not best.empty and best["transfer"].any():
        body += _transfer_note(calib, set(best["phase"]), everything=bool(best["transfer"].all()))
    body += _figure(lambda: F.cost_per_million_tokens(best, title=f"$ per 1M tokens: {model} at measured efficiency, "
                                                                 "cheapest offer per accelerator"), "costs")
    if not best.empty:
        phases = [p for p in F.PHASES if p in set(best["phase"])]
        sort_phase = "decode" if "decode" in phases else phases[0]
        by = {ph: best[best["phase"] == ph].set_index("accelerator_id") for ph in phases}
        order = by[sort_phase]["usd_per_1m_tokens"].sort_values().index[:12]

        def cell(ph, acc, col, fmt):
            t = by.get(ph)
            if t is None or acc not in t.index:
                return "—"
            v = t.at[acc, col]
            return fmt(v) if _is_num(v) or isinstance(v, str) else "—"

        cols = ["accelerator", "cheapest offer", "per accelerator"]
        cols += [f"$ / 1M {'prompt' if ph == 'prefill' else 'generated'} tokens" for ph in ("prefill", "decode") if ph in by]
        cols += [f"{sort_phase} tokens/s", f"{sort_phase} MFU", f"{sort_phase} regime", "basis"]
        trows, classes = [], []
        for acc in order:
            r = by[sort_phase].loc[acc]
            badge = "<span class='badge warn'>extrapolated</span>" if r["extrapolated"] else ""
            trows.append([acc, f"{r['provider']} {r['instance']}, {r['term'].replace('_', '-')}",
                          usd(r["usd_per_accelerator_hour"]) + "/h",
                          *[cell(ph, acc, "usd_per_1m_tokens", usd) for ph in ("prefill", "decode") if ph in by],
                          cell(sort_phase, acc, "tokens_per_s_per_accelerator", lambda v: si(v, "tok/s")),
                          cell(sort_phase, acc, "effective_mfu", _fmt_pct), cell(sort_phase, acc, "regime", str),
                          _Raw(esc("transfer" if r["transfer"] else "measured") + badge)])
            classes.append("transfer" if r["transfer"] else "")
        body += "<h3>The cheapest accelerators</h3>" + table_html(cols, trows, row_classes=classes)
    return body, costs, skipped


def _transfer_note(calib: Mapping, phases: Iterable[str], *, everything: bool) -> str:
    """The warning that names where transferred numbers were measured (device, dtype, phase)."""
    measured = sorted({f"{f['hardware']} ({f['dtype']} {f['phase']})" for f in calib["fits"] if f["phase"] in phases})
    what = ("None of these accelerators was measured: every figure here" if everything
            else "Every bar and row marked <i>transfer</i>")
    return _p(f"{what} uses the efficiencies and overhead measured on <b>{esc('; '.join(measured))}</b>, "
              "scaled to that accelerator's datasheet peaks. Read it as a what-if, not as a measurement of "
              "that accelerator.", "omitted transfer-note")


def _distinct_reasons(skipped: Sequence[str], limit: int = 4) -> list[str]:
    """'model phase on price: reason' lines grouped by reason, with how many offers each covers."""
    groups: dict[str, int] = {}
    for line in skipped:
        reason = line.split(": ", 1)[1] if ": " in line else line
        groups[reason] = groups.get(reason, 0) + 1
    out = [f"{reason} ({n} offer{'s' if n > 1 else ''})" if n > 1 else reason for reason, n in groups.items()]
    return out[:limit] + ([f"and {len(out) - limit} more"] if len(out) > limit else [])


def _change(new, old) -> str:
    """+35%, -17%, or x110 when the ratio is large."""
    if not (_is_num(new) and _is_num(old) and old > 0):
        return "—"
    ratio = new / old
    return f"×{ratio:.3g}" if ratio >= 3 else f"{ratio - 1:+.0%}"


ARTICLE_ROWS = {  # calibrate.article keys -> (short label, panel)
    "inference.aws.usd_per_1k_tokens": ("GPT-3 on AWS A100 (p4d, 1-yr)", "$ per 1K tokens"),
    "inference.tpu.usd_per_1k_tokens": ("GPT-3 on TPU v4 (1-yr)", "$ per 1K tokens"),
    "training.gpt3.usd": ("GPT-3", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.gopher.usd": ("Gopher", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.mt_nlg.usd": ("MT-NLG", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.palm.usd": ("PaLM", "$ per training run, TPU v4 at $2.03/chip-h"),
    "training.chinchilla.usd": ("Chinchilla", "$ per training run, TPU v4 at $2.03/chip-h"),
}


def article_frame(doc: Mapping) -> pd.DataFrame:
    """calibrate.article's document -> the rows `figures.article_vs_calibrated` draws (the article's
    headline dollar figures: GPT-3 per 1K tokens, each model's training run)."""
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


def _article_section(calib: Mapping | None) -> str:
    intro = ("The 2023 article priced GPT-3 with assumed utilizations: 21.3 % MFU for inference (2N FLOPs per "
             "token) and 46.2 % for training (6N). Here the same scenarios are priced with the step time this "
             "calibration predicts, on the article's accelerators (A100, TPU v4) and at the article's model sizes; "
             "the percentages on the bars are the utilization each implies. A calibration measured elsewhere is "
             "<b>transferred</b> to those accelerators: a what-if, not a measurement of GPT-3.")
    title = "The article against measured efficiency"
    if calib is None:
        return _section("article", title, _p(intro) + _omitted("comparing with the article needs a "
                                                         "calibration."))
    from llmecon.calibrate.article import calibrated_article

    try:
        doc = calibrated_article(calib, transfer=True)
    except UserError as exc:
        return _section("article", title, _p(intro) + _omitted(f"{esc(exc)}"))
    rows = article_frame(doc)
    a = doc.get("assumptions") or {}
    inf, tr = a.get("inference") or {}, a.get("training") or {}
    body = _p(intro)
    if inf or tr:
        body += _p(f"Workload: GPT-3 decoding at batch {esc(inf.get('batch_size'))} and context "
                   f"{esc(inf.get('context_len'))}; training steps of {esc(tr.get('batch_size'))} × "
                   f"{esc(tr.get('seq_len'))} tokens; {esc(a.get('dtype'))}. {esc(str(a.get('note') or '').capitalize())}.")
    if not rows.empty and rows["transfer"].any():
        from llmecon.calibrate.article import describe_source

        doc_rows = [r for t in doc["tables"] for r in t["rows"] if r["key"] in ARTICLE_ROWS]
        body += _p("Basis of the measured-efficiency figures: " + esc("; ".join(describe_source(doc_rows))) + ".",
                   "omitted transfer-note")
    body += _figure(lambda: F.article_vs_calibrated(rows), "article")
    if not rows.empty:
        body += table_html(
            ["scenario", "article", "article MFU", "at measured efficiency", "implied MFU", "change", "regime", "basis"],
            [[r["label"], usd(r["article_usd"]), _fmt_pct(r["article_mfu"]), usd(r["calibrated_usd"]),
              _fmt_pct(r["calibrated_mfu"]), _change(r["calibrated_usd"], r["article_usd"]), r["regime"],
              _Raw(esc("transfer" if r["transfer"] else "measured")
                   + ("<span class='badge warn'>extrapolated</span>" if r["extrapolated"] else ""))]
             for _, r in rows.iterrows()],
            row_classes=["transfer" if t else "" for t in rows["transfer"]])
    if doc.get("skipped"):
        body += _p("Not priced: " + esc("; ".join(doc["skipped"])), "omitted")
    return _section("article", title, body)


def _rows_section(frame: pd.DataFrame, problems: Sequence[str]) -> str:
    ok = F.usable_rows(frame)
    bad = frame.drop(index=ok.index)
    if bad.empty and not problems:
        return ""
    body = ""
    if not bad.empty:
        body += _p("Configurations that did not give a valid measurement; they are in no figure or fit.")
        rows = [[r["model"], r["phase"], r["batch_size"], r["seq_len"], r["status"],
                 r.get("reason") if isinstance(r.get("reason"), str) else ("invalid timing" if r["status"] == "ok" else "")]
                for _, r in bad.iterrows()]
        body += table_html(["model", "phase", "batch", "seq_len", "status", "reason"], rows)
    if problems:
        body += "<h3>Files the loader could not read</h3><ul class='problems'>" + "".join(
            f"<li>{esc(p)}</li>" for p in problems) + "</ul>"
    return _section("rows", "Rows not plotted", body)


def _provenance_section(frame: pd.DataFrame, run_meta: Mapping[str, Mapping], calib: Mapping | None,
                        calib_source: str | None, sources: Sequence[str]) -> str:
    rows, notes = [], []
    for rid in sorted(set(frame["run_id"])):
        meta = run_meta.get(rid) or {}
        env, dev = meta.get("environment") or {}, meta.get("device") or {}
        sha = env.get("git_sha")
        git = sha[:10] if isinstance(sha, str) and sha else None
        if git and env.get("git_dirty"):
            git += " (dirty)"
        versions = ", ".join(f"{k} {env[k]}" for k in ("python", "torch", "transformers", "cuda", "driver") if env.get(k))
        created = meta.get("created_utc")
        if not dev.get("hardware_id") and dev.get("hardware_match_reason"):
            notes.append(f"{rid}: {dev['hardware_match_reason']}")
        rows.append([rid, created[:19].replace("T", " ") if isinstance(created, str) else created,
                     dev.get("name") or _first(frame, rid, "device_name"), dev.get("hardware_id") or "not on the sheet",
                     int((frame["run_id"] == rid).sum()), versions or None, git])
    body = table_html(["run", "created (UTC)", "device", "sheet id", "records", "versions", "git"], rows)
    if notes:
        body += _p(esc("; ".join(notes)), "note")
    ceil_rows = []
    for rid in sorted(set(frame["run_id"])):
        for dtype, c in ((run_meta.get(rid) or {}).get("ceilings") or {}).items():
            if isinstance(c, Mapping):
                ceil_rows.append([rid, dtype, si(c.get("gemm_flops_per_s"), "FLOP/s"), si(c.get("copy_bytes_per_s"), "B/s"),
                                  c.get("gemm_shape")])
    if ceil_rows:
        body += "<h3>Ceilings measured on the device</h3>" + table_html(
            ["run", "dtype", "GEMM", "copy bandwidth", "GEMM shape"], ceil_rows)
    kv = [("report", f"llmecon {__version__}, {_now()}"), ("runs", ", ".join(map(str, sources)) or "(in memory)")]
    if calib is not None:
        prov = calib.get("provenance") or {}
        kv += [("calibration", calib_source or "(in memory)"),
               ("calibration written", f"{calib.get('created_utc')} by llmecon {calib.get('tool_version')}"),
               ("FLOP convention", calib.get("flop_convention")),
               ("calibrated on runs", ", ".join(prov.get("run_ids") or [])),
               ("calibration sources", ", ".join(prov.get("sources") or []))]
    else:
        kv.append(("calibration", "none given"))
    body += "<h3>This page</h3><dl class='kv'>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in kv) + "</dl>"
    return _section("provenance", "Provenance", body)


def _first(frame, rid, col):
    s = frame.loc[frame["run_id"] == rid, col].dropna()
    return s.iloc[0] if len(s) else None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------------------------------------
# the page


def render_report(frame: pd.DataFrame, *, problems: Sequence[str] = (), run_meta: Mapping[str, Mapping] | None = None,
                  calibration: Mapping | None = None, calibration_source: str | None = None,
                  calibration_error: str | None = None, sources: Sequence[str] = (), title: str | None = None) -> str:
    """The report page (HTML text) for a tidy frame of bench records. `calibration_error`: why there is no
    calibration (said in place of the figures that need one)."""
    if frame is None or frame.empty:
        raise UserError("no records to report on")
    convention = calibration["flop_convention"] if calibration else DEFAULT_CONVENTION
    run_meta = dict(run_meta or {})
    devices = sorted(set(with_hardware(frame)["hardware"]))
    title = title or f"llmecon: {', '.join(dict.fromkeys(frame['model']))} on {', '.join(devices)}"
    sections = [
        ("summary", "Key numbers", _summary_section(frame, convention)),
        ("utilization", "Utilization", _utilization_section(frame, convention)),
        ("roofline", "Roofline", _roofline_section(frame, convention)),
        ("calibration", "Calibration", _calibration_section(frame, calibration, calibration_source, convention,
                                                                    calibration_error)),
        ("costs", "$ per 1M tokens", _cost_section(frame, calibration)[0]),
        ("article", "The article", _article_section(calibration)),
        ("rows", "Rows not plotted", _rows_section(frame, problems)),
        ("provenance", "Provenance", _provenance_section(frame, run_meta, calibration, calibration_source, sources)),
    ]
    nav = "".join(f"<a href='#{a}'>{esc(t)}</a>" for a, t, body in sections if body)
    lede = ("What this machine did with these models, measured: how much of its compute and memory bandwidth each "
            "workload used, how well a simple step-time model explains the measurements, and what a million tokens "
            "would cost at that efficiency." + ("" if calibration else " (No calibration given: the cost sections are omitted.)"))
    tmpl = Template(resources.files("llmecon.report").joinpath("template.html").read_text())
    css = resources.files("llmecon.report").joinpath("report.css").read_text()
    return tmpl.substitute(title=esc(title), css=css, lede=esc(lede), nav=nav,
                           sections="\n".join(body for _a, _t, body in sections if body),
                           version=esc(__version__), generated_utc=esc(_now()))


def build_report(runs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                 calibration: str | os.PathLike | Mapping | None = None, calibration_error: str | None = None,
                 title: str | None = None) -> Path:
    """Load the runs (run folders or folders of runs), write out_dir/index.html, return its path."""
    from llmecon.calibrate.fit import run_metas
    from llmecon.calibrate.schema import load_calibration
    from llmecon.results import load_results

    runs = [Path(r) for r in runs]
    if not runs:
        raise UserError("name at least one run folder (or a folder of runs)")
    for r in runs:
        if not r.exists():
            raise UserError(f"no such run or folder: {r}")
    frame, problems = load_results(runs)
    if frame is None or frame.empty:
        raise UserError(f"no records found under {', '.join(map(str, runs))}"
                        + (f" ({'; '.join(problems)})" if problems else ""))
    calib_source = None
    if calibration is not None and not isinstance(calibration, Mapping):
        calib_source = str(calibration)
        calibration = load_calibration(calibration)
    page = render_report(frame, problems=problems, run_meta=run_metas(runs), calibration=calibration,
                         calibration_source=calib_source, calibration_error=calibration_error,
                         sources=[str(r) for r in runs], title=title)
    out = Path(out_dir)
    path = out / "index.html"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    return path
