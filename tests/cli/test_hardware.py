"""`llmecon hardware`: the hardware sheet as a table or JSON; filters; bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.costmodel.hardware import load_hardware

# a complete, valid user sheet for one new accelerator (the H20 is deliberately absent from the built-in sheet)
HEADER, *GOOD_ROWS = (Path(__file__).parents[1] / "data" / "h20_hardware.csv").read_text(encoding="utf-8").splitlines()
SRC = "my notes,2026-11-29,"


def write(tmp_path, lines, name="user-hw.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- llmecon hardware


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_hardware_json_lists_everything_with_sources():
    result = run("hardware", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_id = {a["id"]: a for a in data}
    assert set(by_id) == set(load_hardware())
    assert by_id["h100-sxm"]["peak_flops_per_s"]["bf16"] == 989e12
    assert all(f["source"] and f["retrieved_on"] for a in data for f in a["facts"])


def test_cli_hardware_filters():
    fp8 = json.loads(run("hardware", "--dtype", "fp8", "--json").stdout)
    assert {a["id"] for a in fp8} >= {"h100-sxm", "h200", "l4", "mi300x"}
    assert not any(a["id"].startswith(("a100", "v100", "tpu")) for a in fp8)
    google = json.loads(run("hardware", "--vendor", "GOOGLE", "--json").stdout)
    assert {a["id"] for a in google} == {"tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"}
    one = json.loads(run("hardware", "--id", "a100-pcie-80gb", "--json").stdout)
    assert [a["id"] for a in one] == ["a100-pcie-80gb"] and one[0]["nvml_names"] == ["NVIDIA A100 80GB PCIe"]


def test_cli_hardware_table():
    result = run("hardware", "--vendor", "nvidia", "--dtype", "bf16")
    assert result.exit_code == 0
    assert "h100-sxm" in result.stdout and "989" in result.stdout and "tpu-v4" not in result.stdout


@pytest.mark.parametrize(
    "args, text",
    [
        (["--id", "h20"], "unknown accelerator 'h20'"),
        (["--dtype", "bf32"], "unknown --dtype 'bf32'"),
        (["--vendor", "intel"], "unknown --vendor 'intel'"),
        (["--hardware-sheet", "/nonexistent/hw.csv"], "sheet not found"),
    ],
)
def test_cli_hardware_bad_input_is_one_line_exit_2(args, text):
    result = run("hardware", *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("llmecon: error:") and text in result.stderr


def test_cli_hardware_user_sheet(tmp_path):
    path = write(tmp_path, [HEADER] + GOOD_ROWS)
    data = json.loads(run("hardware", "--hardware-sheet", str(path), "--id", "h20", "--json").stdout)
    assert data[0]["peak_flops_per_s"] == {"bf16": 148e12}


def test_cli_hardware_no_match_says_so():
    result = run("hardware", "--id", "tpu-v4", "--vendor", "nvidia")
    assert result.exit_code == 0 and "No accelerator matches these filters." in result.stdout
    assert json.loads(run("hardware", "--id", "tpu-v4", "--vendor", "nvidia", "--json").stdout) == []


def test_cli_hardware_dtype_filter_shows_only_that_column():
    result = run("hardware", "--dtype", "fp8")
    assert "fp8 TFLOP/s" in result.stdout and "bf16 TFLOP/s" not in result.stdout


def test_cli_hardware_marks_disputed_figures():
    result = run("hardware", "--id", "a10g")
    assert "⚠" in result.stdout and "sources disagree" in result.stdout
