"""The report's figures, from synthetic tidy frames with a planted roofline (compute / memory / overhead), so
each figure shows known values and the calibration fitted on them is a real one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from llmecon.estimate.article import calibrated_article
from llmecon.render import figures as F
from llmecon.render.sections import article_frame

CEILING = 2e11


def _ax_lines(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 0]


# ---------------------------------------------------------------------------------------------- figures


def test_figures_utilization_figure_draws_the_planted_mfu(frame):
    fig = F.efficiency_vs_batch(frame, "executed")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 6                                 # MFU row + bandwidth row, one column per phase
    mfu_axes = {ax.get_title(loc="left").split(":")[0]: ax for ax in axes if ax.get_title(loc="left").endswith("MFU")}
    assert set(mfu_axes) == {"prefill", "decode", "train"}
    assert {ax.get_ylabel() for ax in mfu_axes.values()} == {"MFU (executed FLOPs)"}   # the MFU names its count
    # no datasheet peak: one solid line per sequence length, whose points are the frame's MFU vs ceiling
    lines = _ax_lines(mfu_axes["prefill"])
    assert len(lines) == 2 and all(ln.get_linestyle() == "-" for ln in lines)
    expect = frame[(frame.phase == "prefill") & (frame.seq_len == 32)].sort_values("batch_size")
    line = next(ln for ln in lines if ln.get_label() == "L=32")
    assert list(line.get_xdata()) == [1, 2, 4, 8]
    np.testing.assert_allclose(line.get_ydata(), expect["mfu_executed_vs_ceiling"].to_numpy(float))
    # the bandwidth row has lines for decode only
    bw = [ax for ax in axes if ax.get_title(loc="left") == "decode: bandwidth use"]
    assert len(bw) == 1 and len(_ax_lines(bw[0])) == 2


def test_figures_utilization_figure_adds_dashed_datasheet_lines_when_the_device_is_on_the_sheet(plant):
    f = plant.report_frame(hardware_id="h100-sxm", peak=4e11, peak_bw=3e10)
    fig = F.efficiency_vs_batch(f, "executed")
    decode = next(ax for ax in fig.axes if ax.get_title(loc="left") == "decode: MFU")
    styles = sorted(ln.get_linestyle() for ln in _ax_lines(decode))
    assert styles == ["-", "-", "--", "--"]


def test_figures_roofline_has_measured_roofs_and_points_by_phase(frame, plant):
    counted = pd.to_numeric(frame["bytes_per_step"], errors="coerce")
    rows = frame.assign(bytes_estimated=counted.isna(), bytes_per_step=counted.fillna(frame["weight_bytes"]))
    fig = F.roofline(rows, "executed")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    roofs = _ax_lines(ax)
    assert len(roofs) == 1                                # measured ceilings only: no datasheet for this device
    y = roofs[0].get_ydata()
    assert max(y) == pytest.approx(CEILING)               # flat roof at the measured GEMM ceiling
    labels = {c.get_label() for c in ax.collections}
    assert "decode" in labels                             # counted bytes: filled
    assert any(lab.startswith("prefill (bytes") for lab in labels)  # weights once: hollow, labelled
    sheet = plant.report_frame(hardware_id="h100-sxm", peak=4e11, peak_bw=3e10)
    fig2 = F.roofline(sheet, "executed")
    styles = sorted(ln.get_linestyle() for ln in _ax_lines(fig2.axes[0]))
    assert styles == ["-", "--"]                          # datasheet dashed, measured solid


def test_figures_measured_vs_predicted_has_the_identity_line_and_the_error_in_the_title(frame):
    pts = pd.DataFrame({"phase": frame["phase"], "step_time_s": frame["step_time_s"],
                        "predicted_step_time_s": frame["step_time_s"] * 1.1, "held_out": [True, False] * 12})
    fig = F.measured_vs_predicted(pts, error_text="held-out median error 7.0%")
    ax = fig.axes[0]
    ident = _ax_lines(ax)[0]
    np.testing.assert_allclose(ident.get_xdata(), ident.get_ydata())
    texts = " ".join(t.get_text() for t in ax.texts) + ax.get_title(loc="left")
    assert "7.0%" in texts
    assert sum(len(c.get_offsets()) for c in ax.collections if c.get_label().endswith(")")) == len(pts)


def test_figures_cost_figure_sorts_bars_and_marks_transfer():
    costs = pd.DataFrame([
        {"label": "a", "phase": "decode", "usd_per_1m_tokens": 3.0, "transfer": False},
        {"label": "b", "phase": "decode", "usd_per_1m_tokens": 1.0, "transfer": True},
        {"label": "c", "phase": "decode", "usd_per_1m_tokens": 2.0, "transfer": True},
        {"label": "a", "phase": "prefill", "usd_per_1m_tokens": 0.3, "transfer": False},
    ])
    fig = F.cost_per_million_tokens(costs)
    prefill_ax, decode_ax = fig.axes[:2]
    ticks = [t.get_text() for t in prefill_ax.get_yticklabels()]
    assert ticks == ["b  (transfer)", "c  (transfer)", "a"]  # cheapest decode first, transfer labelled
    assert len(decode_ax.patches) == 3 and len(prefill_ax.patches) == 1
    assert [p.get_hatch() for p in decode_ax.patches] == ["///", "///", None]
    # the hatch is drawn in the edge colour: on a transferred bar it must differ from the face, or it is invisible
    for bar in decode_ax.patches[:2]:
        assert bar.get_facecolor()[:3] != pytest.approx(bar.get_edgecolor()[:3], abs=0.05)
        assert bar.get_facecolor()[3] == 1.0 and bar.get_edgecolor()[3] == 1.0


def test_figures_article_figure_pairs_article_and_calibrated(calib):
    rows = article_frame(calibrated_article(calib, transfer=True))
    assert {"GPT-3 on AWS A100 (p4d, 1-yr)", "GPT-3"} <= set(rows["item"])
    gpt3 = rows[rows["item"] == "GPT-3"].iloc[0]
    assert gpt3["article_usd"] == pytest.approx(1.4e6, rel=0.01)       # the article's $1.4M (docs/article.md §1.4)
    fig = F.article_vs_calibrated(rows)
    assert len(fig.axes) == 2                             # $ per 1K tokens; $ per training run
    assert sum(len(ax.patches) for ax in fig.axes) == 2 * len(rows)


def test_figures_that_cannot_be_drawn_say_why(frame):
    with pytest.raises(F.FigureOmitted, match="no valid measurements"):
        F.efficiency_vs_batch(frame.assign(valid=False), "executed")
    no_bytes = frame[frame.phase != "decode"]
    with pytest.raises(F.FigureOmitted, match="byte count"):
        F.roofline(no_bytes, "executed")
    with pytest.raises(F.FigureOmitted):
        F.cost_per_million_tokens(pd.DataFrame(columns=["label", "phase", "usd_per_1m_tokens", "transfer"]))
    with pytest.raises(F.FigureOmitted):
        F.measured_vs_predicted(pd.DataFrame())


def test_figures_svg_and_png_output(frame, tmp_path):
    fig = F.efficiency_vs_batch(frame, "executed")
    svg = F.to_svg(fig)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    png = F.to_png(fig, tmp_path / "f.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "f.png").stat().st_size == len(png)


