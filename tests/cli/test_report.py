"""`llmecon report`: the page from runs on disk, with or without a calibration."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from llmecon.cli import main


@pytest.fixture(scope="module")
def planted(tmp_path_factory, plant):
    root = tmp_path_factory.mktemp("report")
    run = plant.planted_run(root / "runs", dtype="fp32", batches=(1, 8, 32), seqs=(128, 2048))
    assert CliRunner().invoke(main, ["calibrate", str(run), "-o", str(root / "c.json")]).exit_code == 0
    return root, run


def test_report_cli_writes_the_page_and_says_where(planted, tmp_path):
    root, run = planted
    res = CliRunner().invoke(main, ["report", str(root / "runs"), "--calibration", str(root / "c.json"), "-o",
                                    str(tmp_path / "r"), "--term", "spot", "--title", "Planted"])
    assert res.exit_code == 0, res.output
    assert f"wrote {tmp_path / 'r' / 'index.html'}" in res.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<title>Planted</title>" in page and "cheapest <b>spot</b> offer" in page
    assert "data-figure='costs'" in page and "data-figure='measured_vs_predicted'" in page


def _offers_priced(page: str) -> list[tuple[str, str, str]]:
    """(accelerator, offer, term, $ per accelerator-hour) of every row of the page's cost tables."""
    section = page.split("<section id='costs'>", 1)[1].split("</section>", 1)[0]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            for body in re.findall(r"<tbody>(.*?)</tbody>", section, re.S)
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]
    return [(cells[0], cells[1], cells[2], cells[3]) for cells in rows]


def test_report_cli_term_changes_the_offers_priced_and_every_row_says_its_term(planted, tmp_path):
    root, _run = planted
    pages = {}
    for term in ("on_demand", "1yr", "spot"):
        res = CliRunner().invoke(main, ["report", str(root / "runs"), "--calibration", str(root / "c.json"), "-o",
                                        str(tmp_path / term), "--term", term])
        assert res.exit_code == 0, res.output
        pages[term] = _offers_priced((tmp_path / term / "index.html").read_text())
    assert pages["on_demand"] and pages["1yr"] and pages["spot"]
    assert {row[2] for row in pages["on_demand"]} == {"on-demand"}
    assert {row[2] for row in pages["1yr"]} == {"1-year"}
    assert {row[2] for row in pages["spot"]} == {"spot"}
    # another term prices other offers: other prices per accelerator-hour (1-year and spot offers are cheaper)
    hourly = {term: {(a, h) for a, _o, _t, h in rows} for term, rows in pages.items()}
    assert hourly["1yr"] != hourly["on_demand"] and hourly["spot"] != hourly["on_demand"]


def test_report_cli_without_calibration(planted, tmp_path):
    res = CliRunner().invoke(main, ["report", str(planted[1]), "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "no calibration was given" in (tmp_path / "r" / "index.html").read_text()


def test_report_cli_refuses_a_missing_run_and_a_bad_term(planted, tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path / "nope"), "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "no such results folder" in res.output
    bad = CliRunner().invoke(main, ["report", str(planted[1]), "--calibration", str(planted[0] / "c.json"),
                                    "--term", "weekly", "-o", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "unknown --term 'weekly'" in bad.output
