"""`llmecon prices`: the price sheet as a table or JSON; filters; bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.costmodel.prices import get_price, load_prices

# a valid user price sheet: one 8 x H100 offer
HEADER, GOOD = (Path(__file__).parents[1] / "data" / "user_prices.csv").read_text(encoding="utf-8").splitlines()


def write(tmp_path, lines, name="user-prices.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- llmecon prices


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_prices_json_and_filters():
    result = run("prices", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == len(load_prices())
    h100 = json.loads(run("prices", "--accelerator", "h100-sxm", "--term", "on-demand", "--json").stdout)
    assert h100 and all(p["accelerator_id"] == "h100-sxm" and p["term"] == "on_demand" for p in h100)
    per = [p["usd_per_accelerator_hour"] for p in h100]
    assert per == sorted(per)
    aws = json.loads(run("prices", "--provider", "AWS", "--json").stdout)
    assert aws and {p["provider"] for p in aws} == {"aws"}
    one = json.loads(run("prices", "--id", "aws-p4d.24xlarge-1yr-2023", "--json").stdout)
    assert one == [get_price("aws-p4d.24xlarge-1yr-2023").to_dict()]
    assert one[0]["usd_per_hour"] == 19.22 and one[0]["usd_per_accelerator_hour"] == pytest.approx(2.4025)


def test_cli_prices_table():
    result = run("prices", "--accelerator", "tpu-v4")
    assert result.exit_code == 0
    assert "gcp-tpu-v4-1yr-2023" in result.stdout and "$2.03" in result.stdout


@pytest.mark.parametrize("args, text", [
    (["--id", "nope"], "unknown price 'nope'"),
    (["--accelerator", "h20"], "unknown accelerator 'h20'"),
    (["--provider", "nope"], "unknown provider 'nope'"),
    (["--term", "weekly"], "unknown --term 'weekly'"),
    (["--price-sheet", "/nonexistent/p.csv"], "sheet not found"),
])
def test_cli_prices_bad_input_is_one_line_exit_2(args, text):
    result = run("prices", *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("llmecon: error:") and text in result.stderr


def test_cli_prices_user_sheets(tmp_path):
    path = write(tmp_path, [HEADER, GOOD])
    data = json.loads(run("prices", "--price-sheet", str(path), "--provider", "acme", "--json").stdout)
    assert [p["id"] for p in data] == ["my-h100-od-2026"]


@pytest.mark.parametrize("typed", ["1yr", "1_year", "1-year"])
def test_cli_prices_term_takes_the_usual_spellings(typed):
    data = json.loads(run("prices", "--accelerator", "tpu-v4", "--term", typed, "--json").stdout)
    assert [(p["id"], p["term"]) for p in data] == [("gcp-tpu-v4-1yr-2023", "1_year")]


def test_cli_prices_no_match_says_so():
    result = run("prices", "--id", "aws-p4d.24xlarge-1yr-2023", "--term", "spot")
    assert result.exit_code == 0 and "No price matches these filters." in result.stdout
    assert json.loads(run("prices", "--id", "aws-p4d.24xlarge-1yr-2023", "--term", "spot", "--json").stdout) == []


def test_cli_prices_table_shows_per_accelerator_hour():
    result = run("prices", "--id", "aws-p4d.24xlarge-1yr-2023")
    assert "$19.22" in result.stdout and "$2.40" in result.stdout and "1_year" in result.stdout
