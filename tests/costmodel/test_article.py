"""costmodel.article: every figure of the article, pinned to docs/article.md (section cited in each case)."""

from __future__ import annotations

import json
import re

import pytest

from llmecon.costmodel.article import (ARTICLE_CSV, SOURCE_TAGS, load_article_params, reproduce_article,
                                       round_significant)
from llmecon.errors import UserError


@pytest.fixture(scope="module")
def rep():
    return reproduce_article()


def fig(rep, key):
    return rep.figure(key)


# (key, exact value per docs/article.md, tolerance, the article's printed figure or None, docs/article.md section)
PINNED = [
    # §3.1: 2,050 and 14,050 billed words (query billed once, §5.3)
    ("search.chatgpt.words", 2050, 0, None, "§3.1"),
    ("search.two_stage.words", 14050, 0, None, "§3.1"),
    ("search.chatgpt.api_usd", 0.0547, 5e-5, None, "§3.1"),
    ("search.two_stage.api_usd", 0.3747, 5e-5, None, "§3.1"),
    ("search.chatgpt.usd", 0.00957, 5e-6, 0.010, "§3.1 / §1.3.1 $0.010"),
    ("search.two_stage.usd", 0.0656, 5e-5, 0.066, "§3.1 / §1.3.1 $0.066"),
    ("search.chatgpt.usd_prompt_per_sample", 0.0105, 5e-5, None, "§3.1 other readings"),
    ("search.two_stage.usd_query_per_result", 0.0677, 5e-5, None, "§3.1 other readings, §5.3"),
    # §3.1 revenue: 1.2T -> 2.118T searches; $100B / 2.1T = $0.0476; unrounded $0.0472
    ("revenue.searches_2012", 1.2e12, 1, None, "§3.1"),
    ("revenue.searches_per_year", 2.118e12, 5e8, 2.1e12, "§3.1 ~2.1T"),
    ("revenue.usd_per_query", 0.0476, 5e-5, 0.048, "§3.1 $0.048, §5.4"),
    ("revenue.usd_per_query_unrounded", 0.0472, 5e-5, None, "§5.4"),
    ("revenue.cost_over_revenue", 1.377, 5e-4, 1.4, "§3.1 1.375 ~ 1.4x"),
    ("revenue.optimized_usd_per_query", 0.0082, 5e-5, None, "§3.1 $0.066/8"),
    ("revenue.optimized_share", 0.172, 5e-4, 0.15, "§3.1 / §5.1 exact 17.2% vs ~15%"),
    ("revenue.extra_cost_usd", 17.2e9, 5e7, 10e9, "§3.1 dollar impact, $10B+"),
    # §3.2: $0.0035 / $0.02 = 17.5% ~ 20%; margin 82.5% ~ 80%
    ("sanity.aws_over_api", 0.1757, 5e-4, 0.2, "§3.2"),
    ("sanity.api_gross_margin", 0.824, 5e-4, 0.8, "§3.2"),
    # §3.10 / §5.2: Jasper $0.615/1K tokens (article prints $1.09)
    ("sanity.jasper_usd_per_1k_tokens", 0.615, 5e-4, 1.09, "§3.10, §5.2"),
    # §3.3: GPT-3 inference
    ("inference.flops_per_1k_tokens", 3.5e14, 1, None, "§3.3"),
    ("inference.aws.usd_per_a100_hour", 2.4025, 1e-9, None, "§3.3 ($2.40/GPU)"),
    ("inference.aws.usd_per_1k_tokens", 0.003515, 5e-7, 0.0035, "§3.3 $0.0035"),
    ("inference.tpu.chip_seconds_per_1k_tokens", 5.975, 5e-4, None, "§3.3"),
    ("inference.tpu.usd_per_1k_tokens", 0.00337, 5e-6, 0.0034, "§3.3 1-yr $2.03"),
    ("inference.tpu.usd_per_1k_tokens_on_demand", 0.00534, 5e-6, None, "§3.3 on-demand $3.22"),
    ("inference.tpu.usd_per_1k_tokens_3yr", 0.00241, 5e-6, None, "§3.3 3-yr $1.45"),
    # §3.4: training on TPU v4 at 46.2%
    ("training.gpt3.flops", 3.15e23, 1e18, None, "§3.4"),
    ("training.gpt3.chip_hours", 688_705, 1, None, "§3.4"),
    ("training.gpt3.usd", 1.398e6, 5e2, 1.4e6, "§3.4 / TLDR $1.4M"),
    ("training.gpt3.implied_usd_per_chip_hour", 2.033, 5e-4, 2.03, "§3.4 implied $2.033"),
    ("training.gpt3.usd_on_demand", 2.22e6, 5e3, None, "§3.4 on-demand $2.22M"),
    ("training.gpt3.usd_3yr", 1.00e6, 5e3, None, "§3.4 3-yr $1.00M"),
    ("training.gopher.flops", 5.04e23, 1e18, None, "§3.4"),
    ("training.gopher.chip_hours", 1_101_928, 1, None, "§3.4"),
    ("training.gopher.usd", 2.24e6, 5e3, None, "§3.4 $2.24M"),
    ("training.mt_nlg.flops", 8.586e23, 1e18, None, "§3.4"),
    ("training.mt_nlg.chip_hours", 1_877_214, 1, None, "§3.4"),
    ("training.mt_nlg.usd", 3.81e6, 5e3, None, "§3.4 $3.81M"),
    ("training.palm.flops", 2.527e24, 1e21, None, "§3.4"),
    ("training.palm.chip_hours", 5_525_384, 1, None, "§3.4"),
    ("training.palm.usd", 11.22e6, 5e3, 11.2e6, "§3.4 / TLDR $11.2M"),
    ("training.palm.implied_usd_per_chip_hour", 2.027, 5e-4, 2.03, "§3.4 implied $2.027"),
    ("training.palm.usd_on_demand", 17.8e6, 5e4, None, "§3.4 on-demand $17.8M"),
    ("training.palm.usd_3yr", 8.0e6, 5e4, None, "§3.4 3-yr $8.0M"),
    ("training.chinchilla.flops", 5.88e23, 1e18, None, "§3.4"),
    ("training.chinchilla.chip_hours", 1_285_583, 1, None, "§3.4"),
    ("training.chinchilla.usd", 2.61e6, 5e3, None, "§3.4 $2.61M"),
    # §3.8: memory
    ("memory.bytes_per_param", 20, 0, 20, "§3.8"),
    ("memory.bert_large_bytes", 6.8e9, 1, 6.8e9, "§3.8 6.8 GB"),
    ("memory.gpt3_bytes", 3.5e12, 1, 3.5e12, "§3.8 3.5 TB"),
    ("memory.gpt3_h100_ratio", 43.75, 1e-9, None, "§3.8 43.75"),
    ("memory.gpt3_min_h100s", 44, 0, 44, "§3.8 >= 44 H100s"),
    # §3.6: Chinchilla loss (Hoffmann et al. approach 3)
    ("chinchilla.one_t.param_term", 0.0338, 5e-5, 0.03, "§3.6 figure 19"),
    ("chinchilla.one_t.data_term", 0.2511, 5e-5, 0.25, "§3.6 figure 19"),
    ("chinchilla.one_t.loss", 1.9750, 5e-5, None, "§3.6"),
    ("chinchilla.gpt3.param_term", 0.0611, 5e-5, None, "§3.6"),
    ("chinchilla.gpt3.loss", 2.0023, 5e-5, None, "§3.6"),
    ("chinchilla.gopher.param_term", 0.0521, 5e-5, None, "§3.6"),
    ("chinchilla.gopher.loss", 1.9933, 5e-5, None, "§3.6"),
    ("chinchilla.mt_nlg.param_term", 0.0419, 5e-5, None, "§3.6"),
    ("chinchilla.mt_nlg.data_term", 0.2587, 5e-5, None, "§3.6"),
    ("chinchilla.mt_nlg.loss", 1.9906, 5e-5, None, "§3.6"),
    ("chinchilla.palm.param_term", 0.0417, 5e-5, None, "§3.6"),
    ("chinchilla.palm.data_term", 0.1922, 5e-5, None, "§3.6"),
    ("chinchilla.palm.loss", 1.9239, 5e-5, None, "§3.6"),
    ("chinchilla.chinchilla.param_term", 0.0835, 5e-5, None, "§3.6"),
    ("chinchilla.chinchilla.data_term", 0.1632, 5e-5, None, "§3.6"),
    ("chinchilla.chinchilla.loss", 1.9366, 5e-5, None, "§3.6"),
    ("chinchilla.fewer_params", 0.60, 1e-12, 0.60, "§3.6 60% fewer"),
    # §3.8: utilization history
    ("utilization.gpt3", 0.213, 0, 0.213, "§3.8"),
    ("utilization.mt_nlg", 0.302, 0, 0.302, "§3.8"),
    ("utilization.gopher", 0.325, 0, 0.325, "§3.8 (PaLM Table 3)"),
    ("utilization.palm", 0.462, 0, 0.462, "§3.8"),
    ("utilization.korthikanti", 0.560, 0, 0.560, "§1.8 2/9/23 edit, §3.8"),
    ("utilization.gpt2_single_a100", 0.357, 0, 0.357, "§3.8"),
    ("utilization.palm_over_gpt3", 2.17, 5e-3, 2.2, "§3.8 2.17 ~ 2.2x"),
    # §3.9 (INFERRED): levers and combinations
    ("summary.params_reduction", 0.60, 1e-12, 0.60, "§3.9"),
    ("summary.cost_per_flop_reduction", 0.581, 5e-4, 0.58, "§3.9 / §3.7 58.1%"),
    ("summary.mfu_reduction", 0.539, 5e-4, None, "§3.9 -54%"),
    ("summary.inference_reduction", 0.832, 5e-4, 0.80, "§3.9 -83%"),
    ("summary.training_reduction", 0.807, 5e-4, 0.80, "§3.9 -81%"),
    ("summary.params_x_mfu_reduction", 0.816, 5e-4, None, "§3.9 -82%"),
    ("summary.all_three_reduction", 0.923, 5e-4, None, "§3.9 -92%"),
]


@pytest.mark.parametrize("key, exact, tol, printed, section", PINNED, ids=[p[0] for p in PINNED])
def test_article_figure(rep, key, exact, tol, printed, section):
    f = fig(rep, key)
    assert f.value == pytest.approx(exact, abs=tol), section
    if printed is None:
        assert f.printed is None and f.agrees is None, section
    else:
        assert f.printed == pytest.approx(printed, rel=1e-12), section


# §5: where the article rounds loosely or errs, the exact figure is beside it and says so.
def test_article_loose_roundings_are_flagged(rep):
    loose = {f.key for f in rep.figures() if f.agrees is False}
    assert loose == {"revenue.optimized_share", "sanity.jasper_usd_per_1k_tokens"}
    share = fig(rep, "revenue.optimized_share")
    assert share.printed_text == "~15%" and "17.2%" in share.exact_note and "§5.1" in share.exact_note
    assert "§5.2" in fig(rep, "sanity.jasper_usd_per_1k_tokens").exact_note


def test_article_printed_figures_agree_within_their_rounding(rep):
    # docs/article.md §3: every other printed figure is reproduced to its printed precision.
    printed = [f for f in rep.figures() if f.printed is not None]
    assert len(printed) >= 30
    assert all(f.agrees for f in printed if f.key not in {"revenue.optimized_share",
                                                          "sanity.jasper_usd_per_1k_tokens"})


def test_article_one_t_model_underperforms_chinchilla(rep):
    # docs/article.md §3.6: 1.975 > 1.937.
    assert fig(rep, "chinchilla.one_t_minus_chinchilla").value == pytest.approx(1.9750 - 1.9366, abs=1e-4)


def test_article_rows_are_labelled(rep):
    keys = [f.key for f in rep.figures()]
    assert len(keys) == len(set(keys))
    for f in rep.figures():
        assert f.label and f.reproduces and f.unit
        assert f.source_tag in SOURCE_TAGS
    summary = next(t for t in rep.tables if t.key == "summary")
    assert all(f.source_tag == "INFERRED" for f in summary.rows) and "INFERRED" in summary.title
    # tags follow the inputs: the TPU price is INFERRED (docs/article.md §5.5), so the $1.4M row is too
    assert fig(rep, "training.gpt3.usd").source_tag == "INFERRED"
    assert fig(rep, "inference.aws.usd_per_1k_tokens").source_tag == "TEXT"
    assert fig(rep, "training.palm.flops").source_tag == "EXTERNAL"  # D = 780B from the PaLM paper


def test_article_to_dict_is_strict_json_with_raw_values(rep):
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert {t["key"] for t in d["tables"]} == {"search_cost", "revenue", "sanity", "inference", "training", "memory",
                                              "chinchilla", "utilization", "summary"}
    row = next(r for t in d["tables"] for r in t["rows"] if r["key"] == "training.gpt3.usd")
    assert set(row) >= {"label", "value", "printed", "exact_note", "source_tag", "reproduces", "unit"}
    assert row["value"] == pytest.approx(1.398e6, rel=1e-3) and row["printed"] == 1.4e6
    assert {p["key"] for p in d["parameters"]} >= {"gpt3_params", "tpu_v4_usd_per_chip_hour"}


# --- parameters (docs/article.md §2) -----------------------------------------------------------------

def test_article_parameters_match_article_md_section_2():
    p = {k: v.value for k, v in load_article_params().items()}
    assert p["gpt3_params"] == 175e9 and p["gpt3_training_tokens"] == 300e9
    assert p["palm_params"] == 540e9 and p["palm_training_tokens"] == 780e9
    assert p["a100_peak_flops_per_s"] == 312e12 and p["tpu_v4_peak_flops_per_s"] == 275e12
    assert p["mfu_inference"] == 0.213 and p["mfu_training"] == 0.462
    assert p["aws_p4d_usd_per_hour"] == 19.22 and p["tpu_v4_usd_per_chip_hour"] == 2.03
    # the history table's GPT-3 / PaLM values are the framework's inference / training MFU (docs/article.md §1.3.2, §1.4)
    assert p["mfu_history_gpt3"] == p["mfu_inference"] and p["mfu_history_palm"] == p["mfu_training"]
    tags = {k: v.source_tag for k, v in load_article_params().items()}
    assert tags["tpu_v4_usd_per_chip_hour"] == "INFERRED" and tags["tpu_v4_peak_flops_per_s"] == "EXTERNAL"


def test_article_peaks_and_prices_agree_with_the_sheets():
    # docs/article.md §2 vs the hardware and price sheets (docs/data-sources.md §8-§9: confirmed).
    from llmecon.costmodel.hardware import get_accelerator
    from llmecon.costmodel.prices import load_prices

    p = {k: v.value for k, v in load_article_params().items()}
    assert get_accelerator("a100-sxm4-40gb").peak("bf16") == p["a100_peak_flops_per_s"]
    assert get_accelerator("tpu-v4").peak("bf16") == p["tpu_v4_peak_flops_per_s"]
    prices = {(x.accelerator_id, x.provider, x.term, x.usd_per_hour, x.count) for x in load_prices()}
    assert ("a100-sxm4-40gb", "aws", "1_year", p["aws_p4d_usd_per_hour"], int(p["aws_p4d_accelerators"])) in prices
    assert ("tpu-v4", "gcp", "1_year", p["tpu_v4_usd_per_chip_hour"], 1) in prices
    assert ("tpu-v4", "gcp", "on_demand", p["tpu_v4_usd_per_chip_hour_on_demand"], 1) in prices
    assert ("tpu-v4", "gcp", "3_year", p["tpu_v4_usd_per_chip_hour_3yr"], 1) in prices


def test_article_overrides_recompute_with_the_same_model():
    doubled = reproduce_article({"mfu_inference": 0.426, "mfu_training": 0.924})
    base = reproduce_article()
    for key in ("inference.aws.usd_per_1k_tokens", "training.palm.usd"):
        assert doubled.figure(key).value == pytest.approx(base.figure(key).value / 2, rel=1e-12)
        assert doubled.figure(key).printed == base.figure(key).printed  # the article's figure stays
    assert doubled.figure("training.gpt3.usd").agrees is False
    assert doubled.overrides == {"mfu_inference": 0.426, "mfu_training": 0.924}
    with pytest.raises(UserError, match="unknown article parameter 'nope'"):
        reproduce_article({"nope": 1.0})


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("gpt3_params,175e9", "gpt3_params,abc"), "field 'value' of 'gpt3_params'"),
    (lambda t: t.replace("gpt3_params,175e9", "gpt3_params,nan"), "must be finite"),
    (lambda t: re.sub(r"(?m)^(gpt3_params,[^,]*,[^,]*,)TEXT,", r"\1GUESS,", t), "field 'source_tag'"),
    (lambda t: t + "gpt3_params,1,params,TEXT,x,\n", "appears twice"),
    (lambda t: "\n".join(l for l in t.splitlines() if not l.startswith("palm_params")) + "\n",
     "article parameter 'palm_params' is missing"),
    (lambda t: t.replace("key,value,unit", "key,val,unit"), "header must be"),
])
def test_article_malformed_parameter_file_names_file_row_field(tmp_path, edit, message):
    path = tmp_path / "article.csv"
    path.write_text(edit(ARTICLE_CSV.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        reproduce_article(path=path)
    assert str(path) in str(info.value)


def test_article_round_significant():
    assert round_significant(2.1176e12, 2) == 2.1e12
    assert round_significant(0.004567, 2) == 0.0046
    assert round_significant(0, 3) == 0
