"""`llmecon report`: the page from runs on disk, with or without a calibration."""

from __future__ import annotations

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
