"""estimate_training: the article's GPT-3 run, the preset's token count, the state bound, and refusals."""

from __future__ import annotations

import pytest

from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.estimate.training import DEFAULT_BYTES_PER_PARAM, estimate_training


def test_training_flat_gpt3_on_tpu_v4_is_the_articles_figure():
    """docs/article.md §3.4: GPT-3 on TPU v4 at 46.2 % MFU and $2.03 per chip-hour: $1.4M."""
    out = estimate_training("gpt3-175b", tokens="300B", hardware="tpu-v4", usd_per_hour=2.03, mfu="46.2%",
                            num_accelerators=4096)
    n = load_model_shape("gpt3-175b").params_total
    assert out["flops_total"] == pytest.approx(6 * n * 300e9)
    assert out["usd_total"] == pytest.approx(1.4e6, rel=0.01)
    assert out["wall_clock_days"] == pytest.approx(out["accelerator_hours"] / 4096 / 24)
    assert out["state_bytes"] == pytest.approx(DEFAULT_BYTES_PER_PARAM * n)
    assert out["min_accelerators_for_state"] == -(-out["state_bytes"] // out["memory_bytes_per_accelerator"])


def test_training_tokens_default_to_the_preset_and_too_few_accelerators_are_noted():
    out = estimate_training("chinchilla-70b", hardware="h100-sxm", usd_per_hour=3, mfu=0.45)
    assert out["tokens"] == pytest.approx(1.4e12) and out["tokens_source"] == "preset"
    assert any("cannot hold the training state" in n for n in out["notes"])   # 1 H100 < 70B x 20 B


@pytest.mark.parametrize("options, message", [
    ({"model": "tiny", "hardware": "h100-sxm", "usd_per_hour": 2, "mfu": 0.4}, "--tokens is required"),
    ({"model": "gpt2", "tokens": "1T", "hardware": "h100-sxm", "usd_per_hour": 2, "mfu": 0.4, "num_accelerators": 2.5},
     "--num-accelerators must be a whole number"),
    ({"model": "gpt2", "tokens": "1T", "hardware": "tpu-v4", "usd_per_hour": 2, "mfu": 0.4, "usd_per_kwh": 0.1},
     "no TDP for tpu-v4.*--tdp-w"),
])
def test_training_refusals_name_the_option(options, message):
    with pytest.raises(UserError, match=message):
        estimate_training(**options)
