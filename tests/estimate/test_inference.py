"""estimate_inference: the flat (article) and calibrated paths, their defaults and their refusals."""

from __future__ import annotations

import pytest

from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.estimate.inference import DEFAULT_CONTEXT_LEN, estimate_inference


def test_inference_flat_gpt3_on_p4d_is_the_articles_figure():
    """docs/article.md §3.3: $0.0035 per 1K tokens on a p4d A100 at 21.3 % MFU."""
    out = estimate_inference("gpt3-175b", hardware="a100-sxm4-40gb", price="aws-p4d.24xlarge-1yr-2023", mfu=0.213)
    assert out["usd_per_1k_tokens"] == pytest.approx(0.0035, rel=0.01)
    assert out["flops_per_token"] == pytest.approx(2 * load_model_shape("gpt3-175b").params_total)
    assert out["basis"] == "flat" and out["mfu_source"] == "flat --mfu"
    assert (out["dtype"], out["dtype_source"], out["convention"]) == ("bf16", "default", "article")
    assert out["context_len"] == DEFAULT_CONTEXT_LEN == 2048
    assert out["notes"][0].startswith("Flat utilization for every batch size")


def test_inference_energy_is_priced_only_when_asked():
    base = dict(hardware="h100-sxm", usd_per_hour=3, mfu=0.4)
    assert "energy" not in estimate_inference("llama-3-8b", **base)
    out = estimate_inference("llama-3-8b", **base, usd_per_kwh=0.08, pue=1.1)
    assert out["kwh_per_1k_tokens"] == pytest.approx(out["seconds_per_1k_tokens"] / 3600 * 0.7 * 1.1)


@pytest.mark.parametrize("options, message", [
    ({"mfu": 0.4}, "--hardware is required"),
    ({"hardware": "h100-sxm", "usd_per_hour": 2}, "--mfu is required"),
    ({"hardware": "h100-sxm", "usd_per_hour": 2, "mfu": "40%", "transfer": True}, "--transfer only applies"),
    ({"hardware": "h100-sxm", "usd_per_hour": 2, "mfu": 0.4, "phase": "prefill"}, "--phase prefill needs --calibration"),
    ({"hardware": "h100-sxm", "usd_per_hour": 2, "mfu": 0.4, "phase": "train"}, "--phase must be decode or prefill"),
    ({"hardware": "h100-sxm", "usd_per_hour": 2, "mfu": 0.4, "convention": "2N"}, "unknown --convention"),
    ({"hardware": "h100-sxm", "usd_per_hour": 2, "mfu": 0.4, "context_len": 1.5}, "--context-len must be a whole"),
    ({"hardware": "h100-sxm", "usd_per_hour": 2, "mfu": 0.4, "calibration": 3}, "--calibration must be a calibration"),
])
def test_inference_refusals_name_the_option(options, message):
    with pytest.raises(UserError, match=message):
        estimate_inference("llama-3-8b", **options)
