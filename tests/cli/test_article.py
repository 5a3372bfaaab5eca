"""`llmecon article`: the article's tables recomputed, as text and JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmecon.calibration.fit import fit_calibration
from llmecon.cli import main
from llmecon.estimate.article import article


def run(args):
    return CliRunner().invoke(main, args)


def test_cli_article_json():
    d = json.loads(run(["article", "--json"]).stdout)
    rows = {r["key"]: r for t in d["tables"] for r in t["rows"]}
    # docs/article.md §3.1, §3.3, §3.4, §3.8: a few headline figures in raw units
    assert rows["search.two_stage.usd"]["value"] == pytest.approx(0.0656, abs=5e-5)
    assert rows["inference.aws.usd_per_1k_tokens"]["printed"] == 0.0035
    assert rows["training.palm.usd"]["value"] == pytest.approx(11.22e6, rel=1e-3)
    assert rows["memory.gpt3_bytes"]["value"] == 3.5e12 and rows["memory.gpt3_min_h100s"]["value"] == 44
    assert rows["training.gpt3.chip_hours"]["unit"] == "h"


def test_cli_article_human_output_labels_figures():
    result = run(["article"])
    assert result.exit_code == 0
    for text in ("$1.4M", "$11.2M", "~15%", "17.2", "$0.0035", "44 H100s", "INFERRED", "docs/article.md §5.1"):
        assert text in result.stdout, text
    # written to a pipe (as here), nothing is cropped to fit 80 columns
    assert "…" not in result.stdout and "$2.402 / accelerator-hour" in result.stdout


def test_cli_article_json_is_the_library_dict():
    result = run(["article", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(json.dumps(article()))


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmecon: error: "), result.stderr
    return lines[0]


def test_cli_article_transfer_without_calibration_names_the_options():
    line = _one_line_error(run(["article", "--transfer"]))
    assert "--transfer only applies with --calibration" in line and "transfer=True" not in line


def test_cli_article_calibration_from_elsewhere_asks_for_transfer_option(plant, tmp_path):
    path = fit_calibration(plant.report_frame()).save(tmp_path / "calibration.json")   # a CPU calibration
    line = _one_line_error(run(["article", "--calibration", str(path)]))
    assert "need --transfer" in line and "transfer=True" not in line
