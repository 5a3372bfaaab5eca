"""estimate_inference: the flat (article) path's numbers and defaults, energy, and refusals that name the CLI
option; a calibrated estimate only where an error's wording is at stake."""

from __future__ import annotations

import pytest

from llmecon.calibration.fit import fit_calibration
from llmecon.costmodel import estimate as est
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.estimate.inference import DEFAULT_CONTEXT_LEN, FLAT_NOTE, estimate_inference

P4D = "aws-p4d.24xlarge-1yr-2023"
GPT3_ON_A100 = dict(hardware="a100-sxm4-40gb", price=P4D, mfu=0.213)


def gpt3(**options):
    return estimate_inference("gpt3-175b", **{**GPT3_ON_A100, **options})


# --- the article's numbers ------------------------------------------------------------------------

def test_inference_flat_gpt3_on_p4d_is_the_articles_figure():
    """docs/article.md §3.3: $0.0035 per 1K tokens on a p4d A100 at 21.3 % MFU. The preset's N is the real
    shape's (174.6B, not the article's round 175B), so this gives $0.00351 against the article model's $0.003515."""
    out = gpt3()
    assert {"usd_per_1k_tokens", "usd_per_1m_tokens", "seconds_per_1k_tokens", "tokens_per_s_per_accelerator",
            "flops_per_token", "peak_flops_per_s", "mfu", "usd_per_accelerator_hour", "price"} <= set(out)
    assert out["usd_per_accelerator_hour"] == pytest.approx(19.22 / 8)  # instance price / 8 A100s
    assert out["price"]["price_id"] == P4D and out["price"]["accelerators_per_instance"] == 8
    assert out["flops_per_token"] == pytest.approx(2 * load_model_shape("gpt3-175b").params_total, rel=1e-12)
    ref = est.inference_cost(out["flops_per_token"], 312e12, 0.213, 19.22 / 8)
    assert out["usd_per_1k_tokens"] == pytest.approx(ref["usd_per_1k_tokens"], rel=1e-12)
    assert out["usd_per_1k_tokens"] == pytest.approx(0.0035, rel=0.01)
    assert out["basis"] == "flat" and out["mfu_source"] == "flat --mfu"


def test_inference_flat_defaults_are_bf16_the_article_convention_and_context_2048():
    out = gpt3()
    assert (out["dtype"], out["dtype_source"], out["convention"]) == ("bf16", "default", "article")
    assert out["peak_flops_per_s"] == 312e12                          # the A100's dense bf16 peak
    assert out["context_len"] == DEFAULT_CONTEXT_LEN == 2048
    assert out["notes"] == [FLAT_NOTE]                                 # no energy, nothing beyond the context


def test_inference_flat_dtype_given_is_said_so():
    out = gpt3(dtype="fp32")
    assert (out["dtype"], out["dtype_source"], out["peak_flops_per_s"]) == ("fp32", "--dtype", 19.5e12)


def test_inference_mfu_as_a_percentage_equals_the_fraction():
    assert gpt3(mfu="21.3%") == gpt3(mfu=0.213) == gpt3(mfu="0.213")


def test_inference_usd_per_hour_is_per_accelerator():
    by_hour = gpt3(price=None, usd_per_hour="2.4025")
    assert by_hour["usd_per_1k_tokens"] == pytest.approx(gpt3()["usd_per_1k_tokens"], rel=1e-12)
    assert by_hour["price"] == {"usd_per_accelerator_hour": 2.4025, "source": "--usd-per-hour"}


def test_inference_energy_is_priced_from_the_sheet_tdp_only_when_asked():
    base = dict(hardware="h100-sxm", usd_per_hour="3", mfu="0.4")
    out = estimate_inference("llama-3-8b", **base, usd_per_kwh="0.08", pue="1.1")
    hours = out["seconds_per_1k_tokens"] / 3600
    assert out["kwh_per_1k_tokens"] == pytest.approx(hours * 0.700 * 1.1, rel=1e-12)
    assert out["usd_energy_per_1k_tokens"] == pytest.approx(out["kwh_per_1k_tokens"] * 0.08, rel=1e-12)
    assert out["energy"]["tdp_source"] == "hardware sheet TDP"
    plain = estimate_inference("llama-3-8b", **base)
    assert "kwh_per_1k_tokens" not in plain and "energy" not in plain


def test_inference_energy_at_a_given_board_power():
    out = estimate_inference("llama-3-8b", hardware="tpu-v4", usd_per_hour=2, mfu=0.4, usd_per_kwh=0.1, tdp_w=192)
    assert out["kwh_per_1k_tokens"] == pytest.approx(out["seconds_per_1k_tokens"] / 3600 * 0.192, rel=1e-12)
    assert out["energy"]["tdp_source"] == "--tdp-w"


def test_inference_a_context_beyond_the_model_is_priced_but_noted():
    """A what-if: gpt3 attends 2,048 positions; 4,096 is still priced, with a note."""
    out = gpt3(context_len="4096")
    assert out["context_len"] == 4096 and out["usd_per_1k_tokens"] > 0
    assert any("max_position_embeddings 2,048" in n for n in out["notes"])
    assert not any("exceeds" in n for n in gpt3()["notes"])


def test_inference_context_counts_only_in_conventions_with_attention():
    """The article's 2N per token ignores the context; the causal count adds attention over it."""
    assert gpt3(context_len=8192)["flops_per_token"] == gpt3(context_len=512)["flops_per_token"]
    causal = [gpt3(convention="causal", context_len=n)["flops_per_token"] for n in (512, 8192)]
    assert causal[0] < causal[1]


# --- refusals: each names the CLI option ----------------------------------------------------------

@pytest.mark.parametrize("options, pattern", [
    ({"mfu": "0"}, "--mfu must be > 0"),
    ({"mfu": "1.2"}, r"--mfu must be in \(0, 1\]"),
    ({"mfu": "150%"}, r"--mfu must be in \(0, 1\], got 1.5"),
    ({"mfu": "nan"}, "--mfu must be a fraction or a percentage"),
    ({"mfu": float("nan")}, "--mfu must be finite"),
    ({"mfu": "-0.3"}, "--mfu must be > 0"),
    ({"mfu": None, "engine": "nosuch"}, "no published calibration for engine"),
    ({"price": None, "usd_per_hour": "-2"}, "--usd-per-hour must be > 0"),
    ({"price": None, "usd_per_hour": "0"}, "--usd-per-hour must be > 0"),
    ({"price": None, "usd_per_hour": "NaN"}, "--usd-per-hour must be finite"),
    ({"price": None, "usd_per_hour": "two"}, "--usd-per-hour must be a number"),
    ({"price": None}, "exactly one of --price"),
    ({"usd_per_hour": "2"}, "exactly one of --price"),
    ({"price": "gcp-tpu-v4-1yr-2023"}, "is for tpu-v4, not a100-sxm4-40gb"),
    ({"price": "no-such-price"}, "unknown price 'no-such-price'"),
    ({"context_len": "0"}, "--context-len must be > 0"),
    ({"context_len": 1.5}, "--context-len must be a whole number"),
    ({"usd_per_kwh": "-1"}, "--usd-per-kwh must be >= 0"),
    ({"usd_per_kwh": "0.1", "pue": "0.8"}, "--pue must be >= 1"),
    ({"tdp_w": "400"}, "--tdp-w only matters with --usd-per-kwh"),
    # refused even where they change nothing (no calibration, no energy): never silently ignored
    ({"batch_size": "0"}, "--batch-size must be > 0"),
    ({"batch_size": "abc"}, "--batch-size must be a whole number"),
    ({"batch_size": "1.5"}, "--batch-size must be a whole number, got 1.5"),
    ({"pue": "nan"}, "--pue must be finite"),
    ({"pue": "0.5"}, "--pue must be >= 1"),
    ({"transfer": True}, "--transfer only applies with --calibration"),
    ({"phase": "prefill"}, "--phase prefill needs --calibration"),
    ({"phase": "train"}, "--phase must be decode or prefill"),
    ({"convention": "2N"}, "unknown --convention '2N'"),
    ({"dtype": "fp4"}, "unknown --dtype 'fp4'"),
    ({"dtype": "fp8"}, "no dense fp8 peak for a100-sxm4-40gb"),
    ({"hardware": None}, "--hardware is required"),
    ({"hardware": "h20"}, "unknown accelerator 'h20'"),
    ({"calibration": 3}, "--calibration must be a calibration file"),
])
def test_inference_refusals_name_the_option(options, pattern):
    with pytest.raises(UserError, match=pattern):
        gpt3(**options)


def test_inference_unknown_model_is_refused():
    with pytest.raises(UserError, match="unknown model 'no-such-model'"):
        estimate_inference("no-such-model", hardware="h100-sxm", usd_per_hour=2, mfu=0.3)


# --- errors name --transfer, never the Python keyword ---------------------------------------------

def test_inference_flat_transfer_error_names_the_option_not_the_keyword():
    with pytest.raises(UserError) as err:
        gpt3(transfer=True)
    assert "--transfer" in str(err.value) and "transfer=True" not in str(err.value)


def test_inference_calibration_on_other_hardware_asks_for_the_option_not_the_keyword(plant):
    calib = fit_calibration(plant.frame(hardware_id="h200", dtype="bf16"))
    with pytest.raises(UserError) as err:
        estimate_inference("tiny", calibration=calib, hardware="h100-sxm", usd_per_hour=2)
    message = str(err.value)
    assert "measured on h200, not on h100-sxm" in message and "needs --transfer" in message
    assert "transfer=True" not in message
    out = estimate_inference("tiny", calibration=calib, hardware="h100-sxm", usd_per_hour=2, transfer=True)
    assert out["transferred"] and any(n.startswith("TRANSFERRED") for n in out["notes"])
