"""`llmecon estimate inference|training`: JSON keys, the printed tables, errors in one line, speed."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.costmodel import estimate as est
from llmecon.costmodel.presets import load_model_shape

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
    return lines[0]


# --- inference -------------------------------------------------------------------------------------

def test_cli_estimate_inference_json_article_gpt3_on_p4d():
    # docs/article.md §3.3: $0.0035 per 1K tokens on p4d at 21.3%. The preset's N is the real shape's
    # (174.6B, not the article's round 175B), so the CLI gives $0.00351 vs the article model's $0.003515.
    out = run_json(INFER + ["--price", P4D, "--mfu", "0.213"])
    assert {"usd_per_1k_tokens", "usd_per_1m_tokens", "seconds_per_1k_tokens", "tokens_per_s_per_accelerator",
            "flops_per_token", "peak_flops_per_s", "mfu", "usd_per_accelerator_hour", "price"} <= set(out)
    assert out["usd_per_accelerator_hour"] == pytest.approx(19.22 / 8)  # instance price / 8 A100s
    assert out["price"]["price_id"] == P4D and out["price"]["accelerators_per_instance"] == 8
    shape = load_model_shape("gpt3-175b")
    assert out["flops_per_token"] == pytest.approx(2 * shape.params_total, rel=1e-12)
    ref = est.inference_cost(out["flops_per_token"], 312e12, 0.213, 19.22 / 8)
    assert out["usd_per_1k_tokens"] == pytest.approx(ref["usd_per_1k_tokens"], rel=1e-12)
    assert out["usd_per_1k_tokens"] == pytest.approx(0.0035, rel=0.01)
    assert out["mfu_source"] == "flat --mfu"


def test_cli_estimate_inference_usd_per_hour_is_per_accelerator():
    a = run_json(INFER + ["--usd-per-hour", "2.4025", "--mfu", "0.213"])
    b = run_json(INFER + ["--price", P4D, "--mfu", "0.213"])
    assert a["usd_per_1k_tokens"] == pytest.approx(b["usd_per_1k_tokens"], rel=1e-12)


def test_cli_estimate_inference_energy_columns():
    out = run_json(["estimate", "inference", "--model", "llama-3-8b", "--hardware", "h100-sxm", "--usd-per-hour",
                    "3", "--mfu", "0.4", "--usd-per-kwh", "0.08", "--pue", "1.1"])
    hours = out["seconds_per_1k_tokens"] / 3600
    assert out["kwh_per_1k_tokens"] == pytest.approx(hours * 0.700 * 1.1, rel=1e-12)
    assert out["usd_energy_per_1k_tokens"] == pytest.approx(out["kwh_per_1k_tokens"] * 0.08, rel=1e-12)
    assert out["energy"]["tdp_source"] == "hardware sheet TDP"
    assert "kwh_per_1k_tokens" not in run_json(["estimate", "inference", "--model", "llama-3-8b", "--hardware",
                                                "h100-sxm", "--usd-per-hour", "3", "--mfu", "0.4"])


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


# --- training --------------------------------------------------------------------------------------

def test_cli_estimate_training_json_gpt3_on_tpu_v4():
    # docs/article.md §3.4: ~688,705 chip-hours, $1.4M (article N = 175e9; the preset's N is 174.6B).
    out = run_json(TRAIN + ["--tokens", "300B", "--usd-per-hour", "2.03", "--mfu", "0.462",
                            "--num-accelerators", "4096"])
    assert {"usd_total", "accelerator_hours", "wall_clock_days", "min_accelerators_for_state", "flops_total",
            "state_bytes", "tokens"} <= set(out)
    n = load_model_shape("gpt3-175b").params_total
    assert out["flops_total"] == pytest.approx(6 * n * 300e9, rel=1e-12)
    assert out["accelerator_hours"] == pytest.approx(6 * n * 300e9 / (275e12 * 0.462) / 3600, rel=1e-12)
    assert out["usd_total"] == pytest.approx(1.4e6, rel=0.01)
    assert out["wall_clock_days"] == pytest.approx(out["accelerator_hours"] / 4096 / 24, rel=1e-12)
    assert out["state_bytes"] == pytest.approx(20 * n)
    assert out["min_accelerators_for_state"] == -(-out["state_bytes"] // out["memory_bytes_per_accelerator"])


@pytest.mark.parametrize("tokens", ["300e9", "300B", "0.3T", "300_000_000_000", "300000M", "3e11"])
def test_cli_estimate_training_token_forms(tokens):
    out = run_json(TRAIN + ["--tokens", tokens, "--usd-per-hour", "2.03", "--mfu", "0.462"])
    assert out["tokens"] == pytest.approx(300e9, rel=1e-12)


def test_cli_estimate_training_tokens_default_to_the_preset():
    out = run_json(["estimate", "training", "--model", "chinchilla-70b", "--hardware", "tpu-v4", "--usd-per-hour",
                    "2.03", "--mfu", "0.462"])
    assert out["tokens"] == pytest.approx(1.4e12) and out["tokens_source"] == "preset"


def test_cli_estimate_training_energy_needs_a_tdp():
    assert_user_error(TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--usd-per-kwh", ".1"],
                      "no TDP for tpu-v4.*--tdp-w")
    out = run_json(TRAIN + ["--tokens", "1T", "--usd-per-hour", "2", "--mfu", ".4", "--usd-per-kwh", ".1",
                            "--tdp-w", "192"])
    assert out["kwh"] == pytest.approx(out["accelerator_hours"] * 0.192, rel=1e-12)


# --- bad input: one line, exit 2 -------------------------------------------------------------------

@pytest.mark.parametrize("extra, pattern", [
    (["--usd-per-hour", "2", "--mfu", "0"], "--mfu must be > 0"),
    (["--usd-per-hour", "2", "--mfu", "1.2"], r"--mfu must be in \(0, 1\]"),
    (["--usd-per-hour", "2", "--mfu", "nan"], "--mfu must be a fraction or a percentage"),
    (["--usd-per-hour", "2", "--mfu", "150%"], r"--mfu must be in \(0, 1\], got 1.5"),
    (["--usd-per-hour", "2", "--mfu", "-0.3"], "--mfu must be > 0"),
    (["--usd-per-hour", "2"], "--mfu is required"),
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


def test_cli_estimate_accepts_percentages_for_mfu():
    assert run_json(INFER + ["--price", P4D, "--mfu", "21.3%"]) == run_json(INFER + ["--price", P4D, "--mfu", "0.213"])


def test_cli_estimate_flat_numbers_share_one_formatter():
    """Flat and calibrated tables print plain numbers alike: thousands separators, else 4 significant digits."""
    out = run(TRAIN + ["--tokens", "300B", "--usd-per-hour", "2.03", "--mfu", "46.2%", "--num-accelerators", "4096"])
    assert "│ 687,148" in out.stdout or "687,148 " in out.stdout
    assert re.search(r"wall-clock days on 4,096\s+│\s+6\.99\b", out.stdout), out.stdout
