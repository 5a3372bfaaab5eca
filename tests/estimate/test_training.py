"""estimate_training: the article's GPT-3 run, token counts as typed, the preset's token count, the state bound,
energy, and refusals that name the CLI option."""

from __future__ import annotations

import pytest

from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.estimate.training import (DEFAULT_BYTES_PER_PARAM, DEFAULT_NUM_ACCELERATORS, DEFAULT_SEQ_LEN,
                                       estimate_training)

GPT3_ON_TPU = dict(hardware="tpu-v4", usd_per_hour="2.03", mfu="0.462")


def gpt3(**options):
    return estimate_training("gpt3-175b", **{"tokens": "300B", **GPT3_ON_TPU, **options})


def test_training_flat_gpt3_on_tpu_v4_is_the_articles_figure():
    """docs/article.md §3.4: ~688,705 chip-hours, $1.4M (article N = 175e9; the preset's N is 174.6B)."""
    out = gpt3(num_accelerators="4096")
    assert {"usd_total", "accelerator_hours", "wall_clock_days", "min_accelerators_for_state", "flops_total",
            "state_bytes", "tokens"} <= set(out)
    n = load_model_shape("gpt3-175b").params_total
    assert out["flops_total"] == pytest.approx(6 * n * 300e9, rel=1e-12)
    assert out["accelerator_hours"] == pytest.approx(6 * n * 300e9 / (275e12 * 0.462) / 3600, rel=1e-12)
    assert out["usd_total"] == pytest.approx(1.4e6, rel=0.01)
    assert out["wall_clock_days"] == pytest.approx(out["accelerator_hours"] / 4096 / 24, rel=1e-12)
    assert out["state_bytes"] == pytest.approx(DEFAULT_BYTES_PER_PARAM * n) == pytest.approx(20 * n)
    assert out["min_accelerators_for_state"] == -(-out["state_bytes"] // out["memory_bytes_per_accelerator"])


def test_training_flat_defaults_are_bf16_the_article_convention_and_one_accelerator():
    out = gpt3()
    assert (out["basis"], out["dtype"], out["dtype_source"], out["convention"]) == ("flat", "bf16", "default",
                                                                                     "article")
    assert (out["seq_len"], out["num_accelerators"]) == (DEFAULT_SEQ_LEN, DEFAULT_NUM_ACCELERATORS) == (2048, 1)
    assert out["mfu_source"] == "flat --mfu" and out["tokens_source"] == "--tokens"
    assert out["wall_clock_days"] == pytest.approx(out["accelerator_hours"] / 24, rel=1e-12)


def test_training_mfu_as_a_percentage_equals_the_fraction():
    assert gpt3(mfu="46.2%") == gpt3(mfu=0.462)


@pytest.mark.parametrize("tokens", ["300e9", "300B", "0.3T", "300_000_000_000", "300000M", "3e11", 300e9])
def test_training_token_forms(tokens):
    assert gpt3(tokens=tokens)["tokens"] == pytest.approx(300e9, rel=1e-12)


@pytest.mark.parametrize("tokens, value", [("1.4T", 1.4e12), ("10k", 1e4)])
def test_training_token_suffixes(tokens, value):
    assert gpt3(tokens=tokens)["tokens"] == pytest.approx(value, rel=1e-12)


def test_training_tokens_default_to_the_preset():
    out = estimate_training("chinchilla-70b", **GPT3_ON_TPU)
    assert out["tokens"] == pytest.approx(1.4e12) and out["tokens_source"] == "preset"


def test_training_too_few_accelerators_for_the_state_are_noted():
    out = estimate_training("chinchilla-70b", hardware="h100-sxm", usd_per_hour=3, mfu=0.45)
    assert out["min_accelerators_for_state"] == 18                     # 70B x 20 B / 80 GB = 17.5
    assert any("1 accelerator(s) cannot hold the training state: at least 18" in n for n in out["notes"])
    assert not any("cannot hold" in n for n in estimate_training("chinchilla-70b", hardware="h100-sxm",
                                                                  usd_per_hour=3, mfu=0.45,
                                                                  num_accelerators=18)["notes"])


def test_training_energy_needs_a_tdp_or_tdp_w():
    with pytest.raises(UserError, match="no TDP for tpu-v4.*--tdp-w"):
        gpt3(tokens="1T", usd_per_kwh=".1")
    out = gpt3(tokens="1T", usd_per_kwh=".1", tdp_w="192")
    assert out["kwh"] == pytest.approx(out["accelerator_hours"] * 0.192, rel=1e-12)
    assert out["usd_energy"] == pytest.approx(out["kwh"] * 0.1, rel=1e-12)


def test_training_a_sequence_beyond_the_model_is_priced_but_noted():
    out = gpt3(tokens="1T", seq_len="8192")
    assert out["seq_len"] == 8192 and out["usd_total"] > 0
    assert any("max_position_embeddings 2,048" in n for n in out["notes"])
    assert not any("exceeds" in n for n in gpt3()["notes"])


@pytest.mark.parametrize("options, pattern", [
    ({"tokens": "300X"}, "--tokens must be a count"),
    ({"tokens": "-3B"}, "--tokens must be a count"),
    ({"tokens": "-5B"}, "--tokens"),
    ({"tokens": "0"}, "--tokens must be > 0"),
    ({"tokens": "nan"}, "--tokens"),
    ({"tokens": ""}, "--tokens"),
    ({"tokens": "1e"}, "--tokens"),
    ({"tokens": "B"}, "--tokens"),
    ({"mfu": "1.5"}, r"--mfu must be in \(0, 1\]"),
    ({"mfu": None, "engine": "nosuch"}, "no published calibration for engine"),
    ({"num_accelerators": "0"}, "--num-accelerators must be > 0"),
    ({"num_accelerators": "2.5"}, "--num-accelerators must be a whole number"),
    ({"num_accelerators": 2.5}, "--num-accelerators must be a whole number"),
    ({"bytes_per_param": "-20"}, "--bytes-per-param must be > 0"),
    ({"batch_size": "-1"}, "--batch-size must be > 0"),
    ({"seq_len": "0"}, "--seq-len must be > 0"),
    ({"usd_per_hour": None}, "exactly one of --price"),
    ({"usd_per_hour": None, "price": "aws-p4d.24xlarge-1yr-2023"}, "is for a100-sxm4-40gb, not tpu-v4"),
    ({"dtype": "fp8"}, "no dense fp8 peak for tpu-v4"),
    ({"hardware": None}, "--hardware is required"),
    ({"transfer": True}, "--transfer only applies with --calibration"),
    ({"convention": "6N"}, "unknown --convention '6N'"),
])
def test_training_refusals_name_the_option(options, pattern):
    with pytest.raises(UserError, match=pattern):
        gpt3(**options)


def test_training_tokens_are_required_without_a_published_count():
    with pytest.raises(UserError, match="--tokens is required"):
        estimate_training("tiny", hardware="h100-sxm", usd_per_hour=2, mfu=0.4)


def test_training_calibration_on_other_hardware_asks_for_the_option_not_the_keyword(plant):
    from llmecon.calibration.fit import fit_calibration

    calib = fit_calibration(plant.frame(hardware_id="h200", dtype="bf16"))
    with pytest.raises(UserError) as err:
        estimate_training("tiny", tokens="1B", calibration=calib, hardware="h100-sxm", usd_per_hour=2)
    assert "needs --transfer" in str(err.value) and "transfer=True" not in str(err.value)
