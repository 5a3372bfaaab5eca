"""The report: figures from synthetic tidy frames, the HTML page, and the page rendered in headless Chromium.

The synthetic frames have the columns of `results.load_results` and step times planted from a known
roofline (compute / memory / overhead), so the figures show known values and the calibration fitted on
them is a real one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

from llmecon.cli import main
from llmecon.report import figures as F
from llmecon.report.html import article_frame, render_report, with_estimated_bytes, with_hardware

CONVS = ("article", "non_embedding", "causal", "executed")
CEILING, CEILING_BW = 2e11, 2e10


def synthetic_frame(*, phases=("prefill", "decode", "train"), batches=(1, 2, 4, 8), seq_lens=(32, 128),
                    hardware_id=None, device_name="Synthetic CPU", peak=None, peak_bw=None, model="tiny",
                    params=2e6, eta_c=0.5, eta_m=0.6, t0=2e-4, noise=0.02, seed=0) -> pd.DataFrame:
    """One row per (phase, batch, seq_len), step time = F/(C·η_c) + B/(W·η_m) + t0 with a little noise."""
    from llmecon.results import columns

    rng = np.random.default_rng(seed)
    rows = []
    for phase in phases:
        for b in batches:
            for L in seq_lens:
                tokens = b if phase == "decode" else b * L
                flops = (6 if phase == "train" else 2) * params * tokens
                nbytes = 4 * params + b * L * 4096.0 if phase == "decode" else None
                t = flops / (CEILING * eta_c) + (nbytes or 0) / (CEILING_BW * eta_m) + t0
                t *= float(rng.lognormal(0.0, noise))
                r = {"run_id": "synthetic-run", "config_id": f"{model}-{phase}-b{b}-s{L}", "model": model,
                     "hardware_id": hardware_id, "device_name": device_name, "device_kind": "cpu", "dtype": "fp32",
                     "phase": phase, "status": "ok", "reason": None, "batch_size": b, "seq_len": L,
                     "new_tokens": 16 if phase == "decode" else None, "step_time_s": t, "step_time_iqr_s": 0.02 * t,
                     "n_samples": 10, "tokens_per_step": tokens, "tokens_per_s": tokens / t, "bytes_per_step": nbytes,
                     "peak_flops_per_s": peak, "ceiling_flops_per_s": CEILING, "peak_bytes_per_s": peak_bw,
                     "ceiling_bytes_per_s": CEILING_BW, "peak_memory_bytes": 1e8, "valid": True}
                for i, c in enumerate(CONVS):
                    f = flops * (1 + 0.05 * i)
                    r[f"flops_per_step_{c}"] = f
                    r[f"achieved_flops_per_s_{c}"] = f / t
                    r[f"mfu_{c}"] = f / t / peak if peak else None
                    r[f"mfu_{c}_vs_ceiling"] = f / t / CEILING
                r["bytes_per_s"] = nbytes / t if nbytes else None
                r["bandwidth_util"] = nbytes / t / peak_bw if nbytes and peak_bw else None
                r["bandwidth_util_vs_ceiling"] = nbytes / t / CEILING_BW if nbytes else None
                rows.append(r)
    frame = pd.DataFrame(rows).reindex(columns=columns())
    for col in ("batch_size", "seq_len", "new_tokens", "n_samples"):
        frame[col] = frame[col].astype("Int64")
    frame["valid"] = frame["valid"].fillna(False).astype(bool)
    return frame


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame()


@pytest.fixture(scope="module")
def calib(frame):
    from llmecon.calibrate import fit_calibration

    return fit_calibration(frame)


@pytest.fixture(scope="module")
def page(frame, calib):
    return render_report(frame, calibration=calib, calibration_source="calibration.json")


def _ax_lines(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 0]


# ---------------------------------------------------------------------------------------------- figures


def test_utilization_figure_draws_the_planted_mfu(frame):
    fig = F.efficiency_vs_batch(frame, "executed")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 6                                 # MFU row + bandwidth row, one column per phase
    mfu_axes = {ax.get_title(loc="left").split(":")[0]: ax for ax in axes if ax.get_title(loc="left").endswith("MFU")}
    assert set(mfu_axes) == {"prefill", "decode", "train"}
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


def test_utilization_figure_adds_dashed_datasheet_lines_when_the_device_is_on_the_sheet():
    f = synthetic_frame(hardware_id="h100-sxm", peak=4e11, peak_bw=3e10)
    fig = F.efficiency_vs_batch(f, "executed")
    decode = next(ax for ax in fig.axes if ax.get_title(loc="left") == "decode: MFU")
    styles = sorted(ln.get_linestyle() for ln in _ax_lines(decode))
    assert styles == ["-", "-", "--", "--"]


def test_roofline_has_measured_roofs_and_points_by_phase(frame):
    rows = with_estimated_bytes(with_hardware(frame))
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
    sheet = synthetic_frame(hardware_id="h100-sxm", peak=4e11, peak_bw=3e10)
    fig2 = F.roofline(with_hardware(sheet), "executed")
    styles = sorted(ln.get_linestyle() for ln in _ax_lines(fig2.axes[0]))
    assert styles == ["-", "--"]                          # datasheet dashed, measured solid


def test_measured_vs_predicted_has_the_identity_line_and_the_error_in_the_title(frame):
    pts = pd.DataFrame({"phase": frame["phase"], "step_time_s": frame["step_time_s"],
                        "predicted_step_time_s": frame["step_time_s"] * 1.1, "held_out": [True, False] * 12})
    fig = F.measured_vs_predicted(pts, error_text="held-out median error 7.0%")
    ax = fig.axes[0]
    ident = _ax_lines(ax)[0]
    np.testing.assert_allclose(ident.get_xdata(), ident.get_ydata())
    texts = " ".join(t.get_text() for t in ax.texts) + ax.get_title(loc="left")
    assert "7.0%" in texts
    assert sum(len(c.get_offsets()) for c in ax.collections if c.get_label().endswith(")")) == len(pts)


def test_cost_figure_sorts_bars_and_marks_transfer():
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


def test_article_figure_pairs_article_and_calibrated(calib):
    from llmecon.calibrate.article import calibrated_article

    rows = article_frame(calibrated_article(calib, transfer=True))
    assert {"GPT-3 on AWS A100 (p4d, 1-yr)", "GPT-3"} <= set(rows["item"])
    gpt3 = rows[rows["item"] == "GPT-3"].iloc[0]
    assert gpt3["article_usd"] == pytest.approx(1.4e6, rel=0.01)       # the article's $1.4M (numbers.md §1.4)
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


def test_svg_and_png_output(frame, tmp_path):
    fig = F.efficiency_vs_batch(frame, "executed")
    svg = F.to_svg(fig)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    png = F.to_png(fig, tmp_path / "f.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "f.png").stat().st_size == len(png)


# ---------------------------------------------------------------------------------------------- costs


def test_cost_rows_price_the_predicted_time_and_label_transfer():
    from llmecon.calibrate import fit_calibration
    from llmecon.costmodel.hardware import get_accelerator
    from llmecon.costmodel.prices import load_prices
    from llmecon.report.costs import cost_rows, reference_workload

    h100 = get_accelerator("h100-sxm")
    f = synthetic_frame(hardware_id="h100-sxm", device_name="NVIDIA H100 80GB HBM3", peak=h100.peak("fp32"),
                        peak_bw=h100.memory_bytes_per_s)
    calib = fit_calibration(f)
    prices = load_prices()
    mine = [p for p in prices if p.accelerator_id == "h100-sxm"][:1]
    other = [p for p in prices if p.accelerator_id == "a100-sxm4-80gb"][:1]
    assert mine and other
    costs, skipped = cost_rows(calib, ["tiny"], mine + other)
    assert not skipped and set(costs["phase"]) == {"prefill", "decode"}
    assert reference_workload(calib, "decode") == (8, 128)   # the largest batch and length measured
    # measured accelerator: no transfer; another accelerator: transfer, labelled by the calibration
    assert not costs[costs.accelerator_id == "h100-sxm"]["transfer"].any()
    moved = costs[costs.accelerator_id == "a100-sxm4-80gb"]
    assert moved["transfer"].all() and moved["basis"].str.startswith("transferred from h100-sxm").all()
    # $ per 1M tokens = the predicted seconds per token x the price per accelerator-second
    expect = costs["usd_per_accelerator_hour"] / 3600 / costs["tokens_per_s_per_accelerator"] * 1e6
    np.testing.assert_allclose(costs["usd_per_1m_tokens"], expect, rtol=1e-9)


# ---------------------------------------------------------------------------------------------- the page


def test_page_with_calibration_has_every_figure(page):
    names = re.findall(r"<figure class='plot' data-figure='([a-z_]+)'", page)
    assert names == ["utilization", "roofline", "measured_vs_predicted", "costs", "article"]
    assert "Figure omitted" not in page
    for needle in ("Key numbers", "held-out", "transfer", "Provenance", "calibration.json", "executed"):
        assert needle in page
    assert not re.search(r">\s*nan\s*<", page, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # self-contained: nothing to fetch
    assert "<metadata>" not in page


def test_page_names_the_device_that_transferred_numbers_were_measured_on(page):
    # a CPU calibration priced on GPUs and on the article's A100 / TPU v4: every such section says where it was measured
    notes = re.findall(r"<p class='omitted transfer-note'>(.*?)</p>", page, re.S)
    assert len(notes) == 2, notes
    assert "None of these accelerators was measured" in notes[0] and "Synthetic CPU" in notes[0]
    assert "transferred from Synthetic CPU" in notes[1]


def test_report_write_errors_are_one_line(frame, tmp_path):
    from llmecon.errors import UserError
    from llmecon.report.html import build_report
    from calib_synthetic import write_planted_run

    run = write_planted_run(tmp_path / "runs", dtype="fp32", phases=("decode",), batches=(1, 2, 4), seqs=(32,))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot write the report to"):
        build_report([run], tmp_path / "a-file" / "report")


def test_page_shows_the_fit_warnings(frame):
    # an η at its bound is not a measured efficiency: the page says so beside the table that shows "100.0%"
    from llmecon.calibrate import fit_calibration

    flat = frame[frame.phase == "prefill"].assign(step_time_s=1.0)     # all overhead: F/C is at most 2 % of it
    calib = fit_calibration(flat)
    assert calib["fits"][0]["eta_compute"] == 1.0
    page = render_report(flat, calibration=calib)
    assert re.search(r"<p class='omitted fit-warning'>Caution: Synthetic CPU fp32 prefill: eta_compute is at its bound",
                     page)


def test_page_without_calibration_says_why_figures_are_missing(frame):
    page = render_report(frame)
    names = re.findall(r"data-figure='([a-z_]+)'", page)
    assert names == ["utilization", "roofline"]
    assert page.count("class='omitted figure-omitted'") == 3
    assert "no calibration was given" in page


def test_page_lists_rows_that_failed(frame):
    bad = frame.copy()
    bad.loc[0, "status"] = "oom"
    bad.loc[0, "reason"] = "CUDA out of memory (planted)"
    page = render_report(bad)
    assert "Rows not plotted" in page and "CUDA out of memory (planted)" in page


def test_report_cli_refuses_a_missing_run(tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path / "nope"), "-o", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "no such run" in res.output


# ---------------------------------------------------------------------------------------------- Chromium


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(page: Path, tmp_path: Path, screenshot: Path | None = None) -> str:
    """--dump-dom of the page after its scripts ran (and a full-width screenshot when asked)."""
    exe = _chromium()
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    dom = subprocess.run(base + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    if screenshot is not None:
        shot = subprocess.run(base + ["--hide-scrollbars", "--window-size=1200,9000", f"--screenshot={screenshot}",
                                      page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0, shot.stderr[-2000:]
    return dom.stdout


def assert_all_figures_loaded(dom: str, expected: int) -> None:
    m = re.search(r'<body[^>]*data-figures-loaded="(\d+)/(\d+)"', dom)
    assert m, "the page's script did not run (no data-figures-loaded on <body>)"
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total == expected and loaded == total, f"{loaded}/{total} figures loaded, expected {expected}"


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_renders_in_headless_chromium(page, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    dom = render_in_chromium(out / "index.html", tmp_path, screenshot=shot)
    assert_all_figures_loaded(dom, 5)
    assert 'data-figures-omitted="0"' in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
