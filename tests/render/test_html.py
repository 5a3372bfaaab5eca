"""The report page: it renders what it is given (pipeline.report_inputs computes it), says why a figure is
missing, and loads every figure in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from llmecon.calibration.fit import fit_calibration
from llmecon.errors import UserError
from llmecon.pipeline import report_inputs
from llmecon.records.load import Results
from llmecon.render.html import ReportInputs, render_report, write_report


def _results(frame) -> Results:
    return Results(frame=frame, problems=[], runs={}, paths=[Path("synthetic-run")])


@pytest.fixture(scope="module")
def page(frame, calib):
    return render_report(report_inputs(_results(frame), calibration=calib, calibration_source="calibration.json"))


def test_html_page_with_calibration_has_every_figure(page):
    names = re.findall(r"<figure class='plot' data-figure='([a-z_]+)'", page)
    assert names == ["utilization", "roofline", "measured_vs_predicted", "costs", "serving", "article"]
    assert "Figure omitted" not in page
    for needle in ("Key numbers", "held-out", "transfer", "Provenance", "calibration.json", "executed", "on-demand"):
        assert needle in page
    assert not re.search(r">\s*nan\s*<", page, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # self-contained: nothing to fetch
    assert "<metadata>" not in page


def test_html_page_names_the_device_that_transferred_numbers_were_measured_on(page):
    # a CPU calibration priced on GPUs and on the article's A100 / TPU v4: each such section says where it was measured
    notes = re.findall(r"<p class='omitted transfer-note'>(.*?)</p>", page, re.S)
    assert len(notes) == 2, notes
    assert "Synthetic CPU" in notes[0] and "transferred from Synthetic CPU" in notes[1]


def test_html_page_renders_only_what_it_is_given(frame, calib):
    """A cost table of one row: the page's cost section shows that row and nothing it computed itself."""
    costs = pd.DataFrame([{"model": "tiny", "accelerator_id": "h100-sxm", "phase": "decode", "price_id": "x-od",
                           "provider": "acme", "instance": "1x H100", "term": "on_demand",
                           "usd_per_accelerator_hour": 2.0, "dtype": "fp32", "batch_size": 8, "context_len": 128,
                           "tokens_per_s_per_accelerator": 1234.0, "effective_mfu": 0.01, "regime": "memory-bound",
                           "usd_per_1m_tokens": 0.4502, "transfer": True, "extrapolated": False, "basis": "planted"}])
    page = render_report(ReportInputs(results=_results(frame), calibration=calib, costs=costs))
    section = page.split("<section id='costs'>", 1)[1].split("</section>", 1)[0]
    assert "acme 1x H100" in section and "$0.450" in section and section.count("<tr") == 2   # header + one row
    assert "data-figure='article'" not in page        # no article document given: none drawn


def test_html_page_shows_the_fit_warnings(frame):
    # an η at its bound is not a measured efficiency: the page says so beside the table that shows "100.0%"
    flat = frame[frame.phase == "prefill"].assign(step_time_s=1.0)     # all overhead: F/C is at most 2 % of it
    calib = fit_calibration(flat)
    assert calib.fits[0].eta_compute == 1.0
    page = render_report(ReportInputs(results=_results(flat), calibration=calib))
    assert re.search(r"<p class='omitted fit-warning'>Caution: Synthetic CPU fp32 prefill: eta_compute is at its bound",
                     page)


def test_html_page_without_calibration_says_why_figures_are_missing(frame):
    page = render_report(ReportInputs(results=_results(frame)))
    assert re.findall(r"data-figure='([a-z_]+)'", page) == ["utilization", "roofline"]
    assert page.count("class='omitted figure-omitted'") == 4
    assert "no calibration was given" in page


def test_html_page_says_when_the_calibration_failed(frame):
    page = render_report(ReportInputs(results=_results(frame), calibration_error="too few rows"))
    assert "the calibration could not be fitted: too few rows" in page


def test_html_page_lists_rows_that_failed(frame):
    bad = frame.copy()
    bad.loc[0, "status"] = "oom"
    bad.loc[0, "reason"] = "CUDA out of memory (planted)"
    page = render_report(ReportInputs(results=_results(bad)))
    assert "Rows not plotted" in page and "CUDA out of memory (planted)" in page


def test_html_page_flags_noisy_rows(frame):
    noisy = frame.assign(warnings="noisy")
    page = render_report(ReportInputs(results=_results(noisy)))
    assert f"{len(frame)} of {len(frame)} valid row(s) are flagged noisy" in page


def test_html_write_errors_are_one_line(frame, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot write the report to"):
        write_report(ReportInputs(results=_results(frame)), tmp_path / "a-file")
    with pytest.raises(UserError, match="no results in"):
        render_report(ReportInputs(results=_results(frame.iloc[0:0])))


@pytest.mark.slow
def test_html_page_renders_in_headless_chromium(page, tmp_path, chromium):
    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    dom = chromium.render(out / "index.html", tmp_path, screenshot=shot)
    chromium.assert_all_figures_loaded(dom, 6)
    assert 'data-figures-omitted="0"' in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_html_page_serving_section_draws_the_tpot_target(frame, calib):
    page = render_report(report_inputs(_results(frame), calibration=calib, tpot_slo="5ms"))
    serving = page[page.index("<section id='serving'>"):]
    serving = serving[:serving.index("</section>")]
    assert "TPOT target 5 ms" in serving and "bound by tpot" in serving and "▶" in serving


def test_scaling_section_lists_runs_spread_over_devices_and_nothing_else(frame):
    from llmecon.render import sections

    assert sections.scaling(frame) == ""  # one device everywhere: no section
    spread = frame.copy()
    first = spread.index[0]
    for column, value in (("parallel", "ddp"), ("world_size", 2), ("nnodes", 1), ("scaling_efficiency", 0.5),
                          ("scaling_baseline", "same run"), ("rank_imbalance", 0.02),
                          ("comm_bytes_per_step", 558336.0), ("allreduce_busbw_bytes_per_s", 8e8)):
        spread[column] = spread[column].astype(object)
        spread.loc[first, column] = value
    html = sections.scaling(spread)
    assert "ddp x2" in html and "50.0%" in html and "same run" in html
    assert html.count("ddp x2") == 1
    assert "ddp x2" not in sections.not_plotted(spread, [])  # a valid spread run is no "row not plotted"
