"""`llmecon estimate inference|training`: options reach the library (--json prints its dict), the printed
tables, the help's examples, errors in one line, speed. The numbers themselves: tests/estimate/."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from llmecon.calibration.fit import fit_calibration
from llmecon.cli import main
from llmecon.estimate.inference import estimate_inference
from llmecon.estimate.training import estimate_training
from llmecon.vocab import CONVENTIONS, DTYPES

INFER = ["estimate", "inference", "--model", "gpt3-175b", "--hardware", "a100-sxm4-40gb"]
TRAIN = ["estimate", "training", "--model", "gpt3-175b", "--hardware", "tpu-v4"]
P4D = "aws-p4d.24xlarge-1yr-2023"


def run(args):
    return CliRunner().invoke(main, args)


def run_json(args):
    result = run(args + ["--json"])
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def assert_user_error(args, pattern):
    result = run(args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmecon: error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert "transfer=True" not in lines[0]          # errors name CLI options, never the Python keyword
    return lines[0]


def as_json(payload: dict):
    return json.loads(json.dumps(payload))


# --- --json is the library's dict ---------------------------------------------------------------

@pytest.mark.parametrize("args, call", [
    (INFER + ["--price", P4D, "--mfu", "0.213"],
     lambda: estimate_inference("gpt3-175b", hardware="a100-sxm4-40gb", price=P4D, mfu="0.213")),
    (["estimate", "inference", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--usd-per-hour", "3", "--mfu",
      "0.4", "--usd-per-kwh", "0.08", "--pue", "1.1", "--context-len", "4096", "--convention", "causal", "--dtype",
      "fp8"],
     lambda: estimate_inference("llama-3-8b", hardware="h100-sxm", usd_per_hour="3", mfu="0.4", usd_per_kwh="0.08",
                                pue="1.1", context_len="4096", convention="causal", dtype="fp8")),
    (TRAIN + ["--tokens", "300B", "--usd-per-hour", "2.03", "--mfu", "0.462", "--num-accelerators", "4096"],
     lambda: estimate_training("gpt3-175b", tokens="300B", hardware="tpu-v4", usd_per_hour="2.03", mfu="0.462",
                               num_accelerators="4096")),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--usd-per-kwh", ".1", "--tdp-w", "192",
              "--seq-len", "4096", "--bytes-per-param", "16", "--convention", "non_embedding"],
     lambda: estimate_training("gpt3-175b", tokens="1T", hardware="tpu-v4", usd_per_hour="2", mfu=".4",
                               usd_per_kwh=".1", tdp_w="192", seq_len="4096", bytes_per_param="16",
                               convention="non_embedding")),
    (["estimate", "training", "--model", "chinchilla-70b", "--hardware", "tpu-v4", "--usd-per-hour", "2.03", "--mfu",
      "0.462"],
     lambda: estimate_training("chinchilla-70b", hardware="tpu-v4", usd_per_hour="2.03", mfu="0.462")),
])
def test_cli_estimate_json_is_the_library_dict(args, call):
    assert run_json(args) == as_json(call())


def test_cli_estimate_inference_json_article_gpt3_on_p4d():
    # docs/article.md §3.3: $0.0035 per 1K tokens on p4d at 21.3% (the checks of each number: tests/estimate/)
    out = run_json(INFER + ["--price", P4D, "--mfu", "0.213"])
    assert out["usd_per_1k_tokens"] == pytest.approx(0.0035, rel=0.01) and out["mfu_source"] == "flat --mfu"


def test_cli_estimate_training_json_gpt3_on_tpu_v4():
    # docs/article.md §3.4: GPT-3 on 4,096 TPU v4 at 46.2 % and $2.03 per chip-hour: $1.4M
    out = run_json(TRAIN + ["--tokens", "300B", "--usd-per-hour", "2.03", "--mfu", "0.462", "--num-accelerators",
                            "4096"])
    assert out["usd_total"] == pytest.approx(1.4e6, rel=0.01) and out["num_accelerators"] == 4096


def test_cli_estimate_accepts_percentages_for_mfu():
    assert run_json(INFER + ["--price", P4D, "--mfu", "21.3%"]) == run_json(INFER + ["--price", P4D, "--mfu", "0.213"])


def test_cli_estimate_training_accepts_percentages_for_mfu():
    args = TRAIN + ["--tokens", "300B", "--usd-per-hour", "2.03"]
    assert run_json(args + ["--mfu", "46.2%"]) == run_json(args + ["--mfu", "0.462"])


@pytest.mark.parametrize("args", [INFER + ["--price", P4D, "--mfu", "0.213"],
                                  TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4"]])
def test_cli_estimate_flat_dtype_defaults_to_bf16(args):
    out = run_json(args)
    assert (out["dtype"], out["dtype_source"]) == ("bf16", "default")
    assert "dense bf16" in run(args).stdout


def test_cli_estimate_choices_are_the_vocabulary():
    for sub in ("inference", "training"):
        params = {p.name: p for p in importlib.import_module("llmecon.cli.estimate").COMMAND.commands[sub].params}
        assert isinstance(params["dtype"].type, click.Choice) and tuple(params["dtype"].type.choices) == DTYPES
        assert tuple(params["convention"].type.choices) == CONVENTIONS
        assert params["dtype"].default is None        # no fixed default: bf16 flat, the calibration's otherwise


# --- the printed tables ---------------------------------------------------------------------------

def test_cli_estimate_inference_human_output_shows_inputs_formula_result():
    result = run(INFER + ["--price", P4D, "--mfu", "0.213"])
    assert result.exit_code == 0
    for text in ("inputs", "formula", "FLOPs/token x 1,000 / (peak x MFU)", "$ / 1K tokens", "$0.00351", "21.3%"):
        assert text in result.stdout
    assert "exceeds" not in result.stdout
    # a context the model cannot attend is still priced (a what-if), but said so; training alike
    beyond = run(INFER + ["--price", P4D, "--mfu", "0.213", "--context-len", "4096"])
    assert beyond.exit_code == 0 and "max_position_embeddings 2,048" in beyond.stdout
    beyond = run(TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--seq-len", "8192"])
    assert beyond.exit_code == 0 and "max_position_embeddings 2,048" in beyond.stdout


def test_cli_estimate_flat_numbers_share_one_formatter():
    """Flat and calibrated tables print plain numbers alike: thousands separators, else 4 significant digits."""
    out = run(TRAIN + ["--tokens", "300B", "--usd-per-hour", "2.03", "--mfu", "46.2%", "--num-accelerators", "4096"])
    assert "│ 687,148" in out.stdout or "687,148 " in out.stdout
    assert re.search(r"wall-clock days on 4,096\s+│\s+6\.99\b", out.stdout), out.stdout


@pytest.mark.parametrize("sub", ["inference", "training"])
def test_cli_estimate_help_shows_an_example(sub):
    result = run(["estimate", sub, "--help"])
    assert result.exit_code == 0
    examples = [line.strip() for line in result.output.split("Options:")[0].splitlines()
                if line.strip().startswith(f"llmecon estimate {sub} ")]
    assert examples, result.output
    assert all("--model" in line for line in examples)


# --- with a calibration: the dtype is the calibration's and --transfer is named ---------------------

@pytest.fixture
def calibration_file(plant, tmp_path):
    """A calibration of a planted H200 in bf16 (prefill, decode and train fits)."""
    return fit_calibration(plant.frame(hardware_id="h200", dtype="bf16")).save(tmp_path / "calibration.json")


def test_cli_estimate_calibrated_dtype_is_the_calibrations_and_said_so(calibration_file):
    result = run(["estimate", "inference", "--model", "tiny", "--calibration", str(calibration_file),
                  "--usd-per-hour", "2"])
    assert result.exit_code == 0, result.output
    assert "dtype bf16: the calibration's" in result.stdout


def test_cli_estimate_calibration_elsewhere_asks_for_the_option_not_the_keyword(calibration_file):
    line = assert_user_error(["estimate", "inference", "--model", "tiny", "--calibration", str(calibration_file),
                              "--hardware", "h100-sxm", "--usd-per-hour", "2"], "needs --transfer")
    assert "transfer=True" not in line
    line = assert_user_error(["estimate", "training", "--model", "tiny", "--tokens", "1B", "--calibration",
                              str(calibration_file), "--hardware", "h100-sxm", "--usd-per-hour", "2"],
                             "needs --transfer")
    assert "transfer=True" not in line


# --- bad input: one line, exit 2 -------------------------------------------------------------------

@pytest.mark.parametrize("extra, pattern", [
    (["--usd-per-hour", "2", "--mfu", "0"], "--mfu must be > 0"),
    (["--usd-per-hour", "2", "--mfu", "1.2"], r"--mfu must be in \(0, 1\]"),
    (["--usd-per-hour", "2", "--mfu", "nan"], "--mfu must be a fraction or a percentage"),
    (["--usd-per-hour", "2", "--mfu", "150%"], r"--mfu must be in \(0, 1\], got 1.5"),
    (["--usd-per-hour", "2", "--mfu", "-0.3"], "--mfu must be > 0"),
    (["--usd-per-hour", "2", "--engine", "nosuch"], "no published calibration for engine .nosuch."),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--engine", "torchtitan"], "--engine picks a published reference"),
    (["--usd-per-hour", "-2", "--mfu", "0.3"], "--usd-per-hour must be > 0"),
    (["--usd-per-hour", "0", "--mfu", "0.3"], "--usd-per-hour must be > 0"),
    (["--usd-per-hour", "NaN", "--mfu", "0.3"], "--usd-per-hour must be finite"),
    (["--usd-per-hour", "two", "--mfu", "0.3"], "--usd-per-hour must be a number"),
    (["--mfu", "0.3"], "exactly one of --price"),
    (["--usd-per-hour", "2", "--price", P4D, "--mfu", "0.3"], "exactly one of --price"),
    (["--price", "gcp-tpu-v4-1yr-2023", "--mfu", "0.3"], "is for tpu-v4, not a100-sxm4-40gb"),
    (["--price", "no-such-price", "--mfu", "0.3"], "unknown price 'no-such-price'"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--context-len", "0"], "--context-len must be > 0"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--usd-per-kwh", "-1"], "--usd-per-kwh must be >= 0"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--usd-per-kwh", "0.1", "--pue", "0.8"], "--pue must be >= 1"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--tdp-w", "400"], "--tdp-w only matters with --usd-per-kwh"),
    # refused even where they change nothing (no --calibration, no --usd-per-kwh): never silently ignored
    (["--usd-per-hour", "2", "--mfu", "0.3", "--batch-size", "0"], "--batch-size must be > 0"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--batch-size", "abc"], "--batch-size must be a whole number"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--batch-size", "1.5"], "--batch-size must be a whole number, got 1.5"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--pue", "nan"], "--pue must be finite"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--pue", "0.5"], "--pue must be >= 1"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--transfer"], "--transfer only applies with --calibration"),
    (["--usd-per-hour", "2", "--mfu", "0.3", "--phase", "prefill"], "--phase prefill needs --calibration")
])
def test_cli_estimate_inference_bad_input(extra, pattern):
    assert_user_error(INFER + extra, pattern)


@pytest.mark.parametrize("args, pattern", [
    (["estimate", "inference", "--model", "no-such-model", "--hardware", "h100-sxm", "--usd-per-hour", "2",
      "--mfu", ".3"], "no-such-model"),
    (["estimate", "inference", "--model", "gpt2", "--hardware", "h20", "--usd-per-hour", "2", "--mfu", ".3"],
     "unknown accelerator 'h20'"),
    (["estimate", "inference", "--model", "gpt2", "--hardware", "a100-sxm4-40gb", "--usd-per-hour", "2", "--mfu",
      ".3", "--dtype", "fp8"], "no dense fp8 peak for a100-sxm4-40gb"),
    (["estimate", "inference", "--model", "gpt2", "--usd-per-hour", "2", "--mfu", ".3"], "--hardware is required"),
    (TRAIN + ["--tokens", "300X", "--usd-per-hour", "2", "--mfu", ".4"], "--tokens must be a count"),
    (TRAIN + ["--tokens", "-3B", "--usd-per-hour", "2", "--mfu", ".4"], "--tokens must be a count"),
    (TRAIN + ["--tokens", "0", "--usd-per-hour", "2", "--mfu", ".4"], "--tokens must be > 0"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", "1.5"], r"--mfu must be in \(0, 1\]"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--num-accelerators", "0"],
     "--num-accelerators must be > 0"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--num-accelerators", "2.5"],
     "--num-accelerators must be a whole number"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--bytes-per-param", "-20"],
     "--bytes-per-param must be > 0"),
    (["estimate", "training", "--model", "tiny", "--hardware", "h100-sxm", "--usd-per-hour", "2", "--mfu", ".4"],
     "--tokens is required"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--batch-size", "-1"],
     "--batch-size must be > 0"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--usd-per-kwh", ".1"], "no TDP for tpu-v4.*--tdp-w"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--engine", "nosuch"], "no published calibration for engine"),
    (TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--transfer"],
     "--transfer only applies with --calibration"),
    # click's own usage errors are one line too
    (INFER + ["--usd-per-hour", "2", "--mfu", ".3", "--dtype", "fp4"], "Invalid value for '--dtype'"),
    (INFER + ["--usd-per-hour", "2", "--mfu", ".3", "--phase", "train"], "Invalid value for '--phase'"),
    (["estimate", "inference", "--hardware", "h100-sxm"], "Missing option '--model'"),
])
def test_cli_estimate_bad_input_one_line_exit_2(args, pattern):
    assert_user_error(args, pattern)


# --- speed: no torch / transformers / pandas / numpy on the estimate path ---------------------------

@pytest.mark.slow
def test_cli_estimate_imports_nothing_heavy():
    cmd = [sys.executable, "-X", "importtime", "-m", "llmecon", *INFER, "--usd-per-hour", "2", "--mfu", "0.3",
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    heavy = {"torch", "transformers", "pandas", "numpy", "matplotlib"} & imported
    assert not heavy, heavy
    assert json.loads(proc.stdout)["usd_per_1k_tokens"] > 0



def test_estimate_training_prints_the_step_split_at_k():
    from click.testing import CliRunner
    from llmecon.cli.estimate import estimate as command
    result = CliRunner().invoke(command, ["training", "--model", "llama-3-8b", "--tokens", "1B", "--hardware",
                                          "h100-sxm", "--usd-per-hour", "2.5", "--mfu", "0.4", "--num-accelerators",
                                          "16", "--parallel", "fsdp", "--busbw", "40"])
    assert result.exit_code == 0, result.output
    for text in ("step at K = 16 (fsdp)", "exposed communication", "communication share of the step",
                 "MFU per device at K = 16", "--busbw (measured)", "no multi-device measurement"):
        assert text in result.output
