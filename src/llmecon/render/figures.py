"""The report's figures: one function per figure, each returning a matplotlib Figure.

Every function takes plain pandas frames (the tidy frame of `records.load.load_results`, or a small frame
the caller derived from it) and either returns a Figure or raises `FigureOmitted` with one sentence saying
why it cannot be drawn (no valid rows, no decode rows, no calibration...). A figure is never drawn empty.
Helpers, styles and SVG/PNG output: plotting.py.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from llmecon.render.plotting import (CEILING_STYLE, DATASHEET_STYLE, PHASE_COLORS, FigureOmitted, batch_axis,
                                     finite, has_values, is_number, pale, plain_text, seq_colors, style_axes, truthy,
                                     usd_formatter, to_png, to_svg, usable_rows)
from llmecon.units import si, usd
from llmecon.vocab import PHASES

__all__ = ["FigureOmitted", "usable_rows", "to_svg", "to_png", "efficiency_vs_batch", "roofline",
           "measured_vs_predicted", "cost_per_million_tokens", "article_vs_calibrated", "serving_plan", "PHASES",
           "PHASE_COLORS"]


# ----------------------------------------------------------------------------------------------
# 1. MFU and bandwidth use against batch size


@plain_text
def efficiency_vs_batch(frame: pd.DataFrame, convention: str, *, title: str | None = None) -> Figure:
    """MFU (top row) and bandwidth use (bottom row) against batch size, one column per phase.

    One line per sequence length (colour); solid lines are against the ceiling measured on the device
    (large GEMM, memory copy), dashed lines against the datasheet peak when the sheet knows the device.
    """
    rows = usable_rows(frame)
    if rows.empty:
        raise FigureOmitted("there are no valid measurements (status ok and valid) to plot.")
    mfu_ceiling, mfu_sheet = f"mfu_{convention}_vs_ceiling", f"mfu_{convention}"
    if not (has_values(rows, mfu_ceiling) or has_values(rows, mfu_sheet)):
        raise FigureOmitted(f"no row has an MFU under the '{convention}' convention (no peak and no measured ceiling).")
    phases = [p for p in PHASES if p in set(rows["phase"])]
    has_bw = has_values(rows, "bandwidth_util_vs_ceiling") or has_values(rows, "bandwidth_util")
    nrows = 2 if has_bw else 1
    fig = Figure(figsize=(3.3 * len(phases) + 1.2, 2.9 * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, len(phases), squeeze=False)
    multi_model = rows["model"].nunique() > 1
    any_sheet = False

    for j, phase in enumerate(phases):
        sub = rows[rows["phase"] == phase]
        keys = sorted({(m, int(s)) for m, s in zip(sub["model"], sub["seq_len"])}, key=lambda k: (k[1], k[0]))
        colors = seq_colors(keys)
        panels = [(axes[0][j], mfu_ceiling, mfu_sheet, "MFU")]
        if has_bw:
            panels.append((axes[1][j], "bandwidth_util_vs_ceiling", "bandwidth_util", "bandwidth use"))
        for ax, col_ceiling, col_sheet, ylabel in panels:
            style_axes(ax)
            drawn = False
            for key in keys:
                model, seq_len = key
                line = sub[(sub["model"] == model) & (sub["seq_len"] == seq_len)]
                label = f"{model} L={seq_len}" if multi_model else f"L={seq_len}"
                for col, style in ((col_ceiling, "-"), (col_sheet, "--")):
                    if col not in line:
                        continue
                    pts = line[["batch_size", col]].apply(pd.to_numeric, errors="coerce").dropna()
                    pts = pts[np.isfinite(pts[col])].groupby("batch_size")[col].median()
                    if pts.empty:
                        continue
                    ax.plot(pts.index, pts.values, style, marker="o", markersize=4, color=colors[key],
                            label=label if style == "-" or not has_values(line, col_ceiling) else None)
                    any_sheet |= style == "--"
                    drawn = True
            if not drawn:
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ("left", "bottom"):
                    ax.spines[side].set_visible(False)
                ax.grid(False)
                what = "bytes moved are counted for decode steps only" if ylabel == "bandwidth use" else "no MFU"
                ax.text(0.5, 0.5, f"{phase}: {what}", ha="center", va="center", transform=ax.transAxes,
                        color="#777777", fontsize=9, wrap=True)
                continue
            batch_axis(ax, sub["batch_size"])
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
            ax.set_ylim(bottom=0)
            ax.set_xlabel("batch size")
            ax.set_ylabel(f"MFU ({convention} FLOPs)" if ylabel == "MFU" else ylabel)   # every MFU names its count
            ax.set_title(f"{phase}: {ylabel}", fontsize=10, loc="left")
            ax.legend(fontsize=7, frameon=False, loc="best", title="prompt length" if phase == "decode" else "sequence length",
                      title_fontsize=7)

    handles = [Line2D([], [], color="#444444", linestyle="-", label="vs measured ceiling (GEMM / copy)")]
    if any_sheet:
        handles.append(Line2D([], [], color="#444444", linestyle="--", label="vs datasheet peak"))
    else:
        handles.append(Line2D([], [], color="#ffffff", label="(no datasheet peak for this device)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize=8)
    fig.suptitle(title or f"Utilization against batch size ({convention} FLOPs)", fontsize=11, x=0.01, ha="left")
    return fig


# ----------------------------------------------------------------------------------------------
# 2. Roofline


@plain_text
def roofline(frame: pd.DataFrame, convention: str, *, title: str | None = None) -> Figure:
    """Achieved FLOP/s against arithmetic intensity (FLOPs per byte), with compute and bandwidth roofs.

    Roofs: the datasheet's (dashed, when the device is on the sheet) and the ceilings measured on the
    device (solid). Points are coloured by phase; points whose bytes are an estimate (column
    `bytes_estimated` true: weights read once, a lower bound) are drawn hollow.
    """
    rows = usable_rows(frame)
    flops_col, achieved_col = f"flops_per_step_{convention}", f"achieved_flops_per_s_{convention}"
    if rows.empty:
        raise FigureOmitted("there are no valid measurements (status ok and valid) to plot.")
    if "bytes_per_step" not in rows or not has_values(rows, "bytes_per_step"):
        raise FigureOmitted("no row has a byte count, so no arithmetic intensity can be placed on a roofline.")
    pts = rows.assign(
        intensity=pd.to_numeric(rows[flops_col], errors="coerce") / pd.to_numeric(rows["bytes_per_step"], errors="coerce"),
        achieved=pd.to_numeric(rows[achieved_col], errors="coerce"),
    )
    pts = pts[np.isfinite(pts["intensity"]) & np.isfinite(pts["achieved"]) & (pts["intensity"] > 0) & (pts["achieved"] > 0)]
    if pts.empty:
        raise FigureOmitted("no row has both a finite achieved FLOP/s and a byte count.")

    def med(col):
        return float(finite(rows[col]).median()) if has_values(rows, col) else None

    roofs = []
    if med("ceiling_flops_per_s") and med("ceiling_bytes_per_s"):
        roofs.append(("measured ceilings", med("ceiling_flops_per_s"), med("ceiling_bytes_per_s"), CEILING_STYLE))
    if med("peak_flops_per_s") and med("peak_bytes_per_s"):
        roofs.append(("datasheet", med("peak_flops_per_s"), med("peak_bytes_per_s"), DATASHEET_STYLE))

    lo = float(pts["intensity"].min()) / 4
    hi = float(pts["intensity"].max()) * 4
    for _name, peak, bw, _style_kw in roofs:
        ridge = peak / bw
        lo, hi = min(lo, ridge / 8), max(hi, ridge * 8)
    x = np.logspace(math.log10(lo), math.log10(hi), 200)

    fig = Figure(figsize=(10.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    style_axes(ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for name, peak, bw, kw in roofs:
        ax.plot(x, np.minimum(peak, bw * x), label=f"{name}: {si(peak, 'FLOP/s')}, {si(bw, 'B/s')}", **kw)
        ax.annotate(f"ridge {peak / bw:.3g} FLOP/B", (peak / bw, peak), textcoords="offset points", xytext=(4, 6),
                    fontsize=7, color=kw["color"])
    estimated = pts["bytes_estimated"].fillna(False).astype(bool) if "bytes_estimated" in pts else pd.Series(False, index=pts.index)
    for phase in PHASES:
        sel = pts["phase"] == phase
        if not sel.any():
            continue
        color = PHASE_COLORS[phase]
        for est in (False, True):
            s = pts[sel & (estimated == est)]
            if s.empty:
                continue
            ax.scatter(s["intensity"], s["achieved"], s=28, zorder=3,
                       facecolors="none" if est else color, edgecolors=color, linewidths=1.2,
                       label=f"{phase}" + (" (bytes: weights once, a lower bound)" if est else ""))
    ax.set_xlim(lo, hi)
    ymax = max([float(pts["achieved"].max())] + [r[1] for r in roofs]) * 2.5
    ymin = min(float(pts["achieved"].min()), *(r[2] * lo for r in roofs)) / 2 if roofs else float(pts["achieved"].min()) / 4
    ax.set_ylim(max(ymin, ymax / 1e7), ymax)
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: si(v, "FLOP/s")))
    ax.set_xlabel(f"arithmetic intensity ({convention} FLOPs per byte moved)")
    ax.set_ylabel("achieved FLOP/s")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if not any(r[0] == "datasheet" for r in roofs):
        ax.text(0.99, 0.02, "no datasheet roof: the device is not on the hardware sheet", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#777777")
    ax.set_title(title or "Roofline", fontsize=11, loc="left")
    return fig


# ----------------------------------------------------------------------------------------------
# 3. Measured against predicted


@plain_text
def measured_vs_predicted(points: pd.DataFrame, *, error_text: str | None = None, title: str | None = None) -> Figure:
    """Measured step time against the calibration's prediction, log-log, with the y = x line.

    `points` has columns step_time_s, predicted_step_time_s, phase and optionally held_out (bool):
    held-out rows (not used in the fit) are drawn filled, fitted rows hollow.
    """
    if points is None or points.empty:
        raise FigureOmitted("there are no rows with both a measured and a predicted step time.")
    p = points.assign(m=pd.to_numeric(points["step_time_s"], errors="coerce"),
                      q=pd.to_numeric(points["predicted_step_time_s"], errors="coerce"))
    p = p[np.isfinite(p["m"]) & np.isfinite(p["q"]) & (p["m"] > 0) & (p["q"] > 0)]
    if p.empty:
        raise FigureOmitted("the calibration predicts no finite step time for the measured rows.")
    held = p["held_out"].fillna(False).astype(bool) if "held_out" in p else pd.Series(False, index=p.index)
    fig = Figure(figsize=(7.0, 6.0), layout="constrained")
    ax = fig.add_subplot()
    style_axes(ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo = min(p["m"].min(), p["q"].min()) / 1.8
    hi = max(p["m"].max(), p["q"].max()) * 1.8
    line = np.array([lo, hi])
    ax.plot(line, line, color="#222222", linewidth=1.2, label="y = x")
    ax.fill_between(line, line / 1.25, line * 1.25, color="#dddddd", alpha=0.6, linewidth=0, label="±25 %")
    for phase in PHASES:
        for is_held in (True, False):
            s = p[(p["phase"] == phase) & (held == is_held)]
            if s.empty:
                continue
            color = PHASE_COLORS[phase]
            ax.scatter(s["m"], s["q"], s=30, zorder=3, facecolors=color if is_held else "none", edgecolors=color,
                       linewidths=1.2, label=f"{phase} ({'held out' if is_held else 'fitted'})")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    fmt = FuncFormatter(lambda v, _p: si(v, "s"))
    ax.xaxis.set_major_formatter(fmt)
    ax.yaxis.set_major_formatter(fmt)
    ax.set_xlabel("measured step time (median)")
    ax.set_ylabel("predicted step time (calibration)")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.set_title(title or "Measured against predicted step time", fontsize=11, loc="left", pad=18 if error_text else 6)
    if error_text:
        ax.text(0.0, 1.01, error_text, transform=ax.transAxes, fontsize=8, color="#555555", va="bottom", wrap=True)
    return fig


# ----------------------------------------------------------------------------------------------
# 4. $ per 1M tokens across the price sheet


@plain_text
def cost_per_million_tokens(costs: pd.DataFrame, *, title: str | None = None, max_bars: int = 40) -> Figure:
    """Horizontal bars of $ per 1M tokens, one row per price, one panel per phase, sorted (cheapest on top).

    `costs` has columns label, phase, usd_per_1m_tokens, transfer (bool): transferred rows (the price's
    accelerator is not the one measured) are hatched and marked in their label.
    """
    if costs is None or costs.empty:
        raise FigureOmitted("there is no price for which the calibration gives a cost.")
    c = costs.assign(v=pd.to_numeric(costs["usd_per_1m_tokens"], errors="coerce"))
    c = c[np.isfinite(c["v"]) & (c["v"] > 0)]
    if c.empty:
        raise FigureOmitted("no price gives a finite cost per token.")
    phases = [ph for ph in PHASES if ph in set(c["phase"])]
    order_phase = "decode" if "decode" in phases else phases[0]
    order = (c[c["phase"] == order_phase].groupby("label")["v"].min().sort_values())
    rest = c[~c["label"].isin(order.index)].groupby("label")["v"].min().sort_values()
    labels = list(order.index) + list(rest.index)
    labels = labels[:max_bars]
    transfer = c.groupby("label")["transfer"].any()
    n = len(labels)
    fig = Figure(figsize=(3.4 * len(phases) + 3.6, 0.27 * n + 1.6), layout="constrained")
    axes = fig.subplots(1, len(phases), squeeze=False, sharey=True)[0]
    ypos = np.arange(n)
    for ax, phase in zip(axes, phases):
        style_axes(ax)
        ax.grid(True, axis="x", which="major", color="#e4e4e4")
        ax.grid(False, axis="y")
        vals = c[c["phase"] == phase].groupby("label")["v"].min()
        for y, lab in zip(ypos, labels):
            if lab not in vals:
                continue
            t = bool(transfer.get(lab, False))
            # transferred: an opaque pale face under full-strength hatching (an alpha would also fade the hatch,
            # and the SVG backend draws the hatch in the edge colour over the face colour)
            ax.barh(y, vals[lab], color=pale(PHASE_COLORS[phase]) if t else to_rgba(PHASE_COLORS[phase], 0.9),
                    hatch="///" if t else None, edgecolor=PHASE_COLORS[phase], linewidth=0.6, height=0.72)
            ax.text(vals[lab], y, " " + usd(vals[lab]), va="center", fontsize=7)
        ax.set_xscale("log")
        lo, hi = float(vals.min()), float(vals.max())
        ax.set_xlim(lo / 3, hi * 12)
        ax.xaxis.set_major_formatter(usd_formatter())
        ax.set_xlabel(f"$ per 1M {'generated' if phase == 'decode' else 'prompt' if phase == 'prefill' else 'training'} tokens")
        ax.set_title(phase, fontsize=10, loc="left")
    axes[0].set_yticks(ypos)
    axes[0].set_yticklabels([lab + ("  (transfer)" if transfer.get(lab, False) else "") for lab in labels], fontsize=7.5)
    axes[0].invert_yaxis()
    handles = [Patch(facecolor="#999999", label="measured accelerator"),
               Patch(facecolor="#cccccc", hatch="///", edgecolor="#777777", label="transfer: efficiency measured on another device")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize=8)
    fig.suptitle(title or "$ per 1M tokens across the price sheet", fontsize=11, x=0.01, ha="left")
    return fig


# ----------------------------------------------------------------------------------------------
# 5. The article against calibrated


@plain_text
def article_vs_calibrated(rows: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Paired bars: each of the article's figures at its assumed MFU against the same at measured efficiency.

    `rows` has columns item, unit (a label such as "$ per 1K tokens"), article_usd, calibrated_usd and
    optionally article_mfu, calibrated_mfu, transfer (bool). One panel per unit, log scale.
    """
    if rows is None or rows.empty:
        raise FigureOmitted("the calibration does not cover any of the article's scenarios.")
    r = rows.assign(a=pd.to_numeric(rows["article_usd"], errors="coerce"),
                    b=pd.to_numeric(rows["calibrated_usd"], errors="coerce"))
    r = r[np.isfinite(r["a"]) & (r["a"] > 0)]
    if r.empty or not np.isfinite(r["b"]).any():
        raise FigureOmitted("no article scenario has a cost at measured efficiency.")
    units = list(dict.fromkeys(r["unit"]))
    counts = [int((r["unit"] == u).sum()) for u in units]
    fig = Figure(figsize=(10.0, 4.8), layout="constrained")
    axes = fig.subplots(1, len(units), squeeze=False, width_ratios=[max(c, 2) for c in counts])[0]
    width = 0.38
    any_transfer = False
    for ax, unit in zip(axes, units):
        style_axes(ax)
        ax.grid(False, axis="x")
        sub = r[r["unit"] == unit].reset_index(drop=True)
        xs = np.arange(len(sub))
        ax.bar(xs - width / 2, sub["a"], width, color="#9a9a9a", label="article (assumed MFU of 2N / 6N FLOPs)")
        has_b = (np.isfinite(sub["b"]) & (sub["b"] > 0)).to_numpy()
        ax.bar(xs[has_b] + width / 2, sub["b"][has_b], width, color="#d9822b", label="at measured efficiency")
        fs = 7 if len(sub) <= 3 else 6
        for i, row in sub.iterrows():
            mfu_a, mfu_b = row.get("article_mfu"), row.get("calibrated_mfu")
            ax.text(i - width / 2, row["a"] * 1.08, usd(row["a"]) + (f"\n{100 * mfu_a:.1f}%" if is_number(mfu_a) else ""),
                    ha="center", va="bottom", fontsize=fs, color="#444444")
            if has_b[i]:
                ax.text(i + width / 2, row["b"] * 1.08, usd(row["b"]) + (f"\n{100 * mfu_b:.2g}%" if is_number(mfu_b) else ""),
                        ha="center", va="bottom", fontsize=fs, color="#8a4b0f")
        ax.set_yscale("log")
        vals = pd.concat([sub["a"], sub["b"][has_b]])
        ax.set_ylim(vals.min() / 4, vals.max() * 40)
        ax.yaxis.set_major_formatter(usd_formatter())
        ax.set_xticks(xs)
        labels = []
        for _, row in sub.iterrows():
            t = truthy(row.get("transfer"))
            any_transfer |= t
            labels.append(textwrap.fill(str(row["item"]) + (" *" if t else ""), 20))
        ax.set_xticklabels(labels, fontsize=7.5)
        ax.set_title(unit, fontsize=10, loc="left")
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    if any_transfer:
        fig.supxlabel("* transfer: efficiency measured on another device, applied to this accelerator's datasheet "
                      "peak. On the bars: $ and the MFU it implies (article FLOPs: 2N, 6N).", fontsize=7.5, color="#555555", x=0.01, ha="left")
    fig.suptitle(title or "The article's assumptions against measured efficiency", fontsize=11, x=0.01, ha="left")
    return fig


# ----------------------------------------------------------------------------------------------
# 6. A serving plan: cost against TPOT


@plain_text
def serving_plan(plan: dict, *, title: str | None = None) -> Figure:
    """$ per 1M output tokens against TPOT, one point per concurrency of a `llmecon plan serve` result, the plan
    marked and the TPOT target drawn: more requests in flight are cheaper per token and slower per token."""
    rows = [r for r in plan.get("rows") or [] if r["tpot_s"] > 0 and r["usd_per_1m_output_tokens"] > 0]
    if not rows:
        raise FigureOmitted("the plan has no concurrency to draw.")
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    style_axes(ax)
    x = [r["tpot_s"] for r in rows]
    y = [r["usd_per_1m_output_tokens"] for r in rows]
    ax.plot(x, y, "-", color="#9a9a9a", linewidth=1, zorder=1)
    last_label = -math.inf
    for r, xi, yi in zip(rows, x, y):
        ok = r["ok"]
        ax.scatter([xi], [yi], s=60 if r["plan"] else 22, zorder=3, color="#d9822b" if r["plan"] else
                   ("#3b7dd8" if ok else "#bbbbbb"), edgecolor="black" if r["plan"] else "none")
        if r["plan"] or math.log10(xi) - last_label > 0.2:   # labels a fifth of a decade apart at least
            ax.annotate(f"{r['concurrency']:,}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color="#444444")
            last_label = math.log10(xi)
    tpot_slo = (plan.get("slo") or {}).get("tpot_s")
    if tpot_slo:
        ax.axvline(tpot_slo, color="#c0392b", linestyle="--", linewidth=1)
        ax.text(tpot_slo, max(y), f" TPOT target {si(tpot_slo, 's')}", color="#c0392b", fontsize=8, va="top")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v, "s")))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))   # a cost curve spans a decade or two
    ax.yaxis.set_major_formatter(usd_formatter())
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("time per output token (TPOT)")
    ax.set_ylabel("$ per 1M output tokens")
    ax.legend(handles=[Line2D([], [], marker="o", linestyle="", color="#3b7dd8", label="meets the targets"),
                       Line2D([], [], marker="o", linestyle="", color="#bbbbbb", label="misses a target or memory"),
                       Line2D([], [], marker="o", linestyle="", color="#d9822b", markeredgecolor="black",
                              label="the plan")], fontsize=8, frameon=False, loc="upper right")
    fig.suptitle(title or f"Serving {plan['model']} on {plan['hardware_id']}: cost against TPOT, by concurrency "
                          "(labels)", fontsize=10, x=0.01, ha="left")
    return fig
