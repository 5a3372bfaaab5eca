"""The article's scenarios and tables, rebuilt from its parameters with the cost model.

The article: Sunyan, "The Economics of Large Language Models" (Jan 2023). Its formula and table images
are lost; docs/article.md rebuilds every one of them from the numbers the text states
(§3) and lists where the text rounds loosely (§5). This module recomputes each figure from the
parameters in `data/article.csv` (docs/article.md §2; each value tagged TEXT / INFERRED / EXTERNAL with its
source) through `costmodel.estimate`, and sets the article's printed figure beside the exact one.

Each `Figure` says what it reproduces, the article's printed figure (or None where the article prints
none), whether the exact value agrees with it (within half a unit of the printed figure's last digit,
or "at least" for figures such as ">80%"), and a note where they differ.

Parameter values can be overridden (`reproduce_article({"mfu_inference": 0.35})`) to print the same
tables at another utilization or price; the printed figures stay the article's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from llmecon.costmodel import estimate
from llmecon.costmodel.article_params import (ARTICLE_CSV, SOURCE_TAGS, ArticleParam, ArticleReproduction,
                                              ArticleTable, Figure, ParamValues, api_cost_per_query,
                                              chinchilla_loss_terms, load_article_params, round_significant)

# ---------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------

def _search_cost(v: ParamValues) -> ArticleTable:
    base = ("openai_davinci_usd_per_1k_tokens", "words_per_1k_tokens", "cache_hit_rate", "openai_gross_margin")

    def cost(words):
        return api_cost_per_query(words, v["openai_davinci_usd_per_1k_tokens"], v["words_per_1k_tokens"],
                                  v["cache_hit_rate"], v["openai_gross_margin"])

    def api_price(words):  # before cache and margin: the same formula at cache 0, margin 0
        return api_cost_per_query(words, v["openai_davinci_usd_per_1k_tokens"], v["words_per_1k_tokens"], 0, 0)

    chat_in = ("chatgpt_prompt_words", "chatgpt_response_words", "chatgpt_samples_per_query")
    two_in = ("two_stage_query_words", "two_stage_results", "two_stage_section_words", "two_stage_response_words")
    # docs/article.md §3.1 / §5.3: the 50-word query is billed ONCE per query; responses per sample / per result.
    chat_words = v["chatgpt_prompt_words"] + v["chatgpt_samples_per_query"] * v["chatgpt_response_words"]
    two_words = v["two_stage_query_words"] + v["two_stage_results"] * (
        v["two_stage_section_words"] + v["two_stage_response_words"])
    chat_alt = v["chatgpt_samples_per_query"] * (v["chatgpt_prompt_words"] + v["chatgpt_response_words"])
    two_alt = v["two_stage_results"] * (v["two_stage_query_words"] + v["two_stage_section_words"]
                                        + v["two_stage_response_words"])
    tokens = lambda words: words / v["words_per_1k_tokens"] * 1e3  # noqa: E731
    rows = [
        v.figure("search.chatgpt.words", "ChatGPT Equivalent: billed words/query (50 + 5 x 400)", chat_words,
                "words", tag="INFERRED", note="query billed once (docs/article.md §5.3)",
                reproduces="§1.3.1 figure 3", inputs=chat_in),
        v.figure("search.chatgpt.tokens", "ChatGPT Equivalent: billed tokens/query", tokens(chat_words), "tokens",
                tag="INFERRED", reproduces="§1.3.1 figure 3", inputs=chat_in + ("words_per_1k_tokens",)),
        v.figure("search.chatgpt.api_usd", "ChatGPT Equivalent: API price/query", api_price(chat_words),
                "USD/query", tag="INFERRED", reproduces="§1.3.1 figure 3", inputs=chat_in + base[:2]),
        v.figure("search.chatgpt.usd", "ChatGPT Equivalent: cloud compute cost/query", cost(chat_words),
                "USD/query", printed="0.010", text="$0.010", tag="TEXT", reproduces="§1.3.1 $0.010/query",
                note="after 30% cache hits and 75% OpenAI gross margin", inputs=chat_in + base),
        v.figure("search.chatgpt.usd_prompt_per_sample", "ChatGPT Equivalent, prompt billed per sample (5 x 450 words)",
                cost(chat_alt), "USD/query", tag="INFERRED", reproduces="docs/article.md §5.3 (other reading)",
                note="borderline: rounds to $0.010 or $0.011; not the reading used", inputs=chat_in + base),
        v.figure("search.two_stage.words", "2-Stage Summarizer: billed words/query (50 + 10 x (1,000 + 400))",
                two_words, "words", tag="INFERRED", note="query billed once (docs/article.md §5.3)",
                reproduces="§1.3.1 figure 4", inputs=two_in),
        v.figure("search.two_stage.tokens", "2-Stage Summarizer: billed tokens/query", tokens(two_words), "tokens",
                tag="INFERRED", reproduces="§1.3.1 figure 4", inputs=two_in + ("words_per_1k_tokens",)),
        v.figure("search.two_stage.api_usd", "2-Stage Summarizer: API price/query", api_price(two_words),
                "USD/query", tag="INFERRED", reproduces="§1.3.1 figure 4", inputs=two_in + base[:2]),
        v.figure("search.two_stage.usd", "2-Stage Summarizer: cloud compute cost/query", cost(two_words),
                "USD/query", printed="0.066", text="$0.066", tag="TEXT", reproduces="§1.3.1 $0.066/query",
                note="after 30% cache hits and 75% OpenAI gross margin", inputs=two_in + base),
        v.figure("search.two_stage.usd_query_per_result", "2-Stage, query billed per result (10 x 1,450 words)",
                cost(two_alt), "USD/query", tag="INFERRED", reproduces="docs/article.md §5.3 (other reading)",
                note="would print $0.068, not the article's $0.066: not the reading used", inputs=two_in + base),
    ]
    return ArticleTable("search_cost", "LLM search cost per query, first-order approximation (API prices)",
                        "docs/article.md §3.1, §5.3",
                        "cost/query = words x ($0.02 / 750 words) x (1 - 30% cache) x (1 - 75% margin); the "
                        "formula images are lost, the billing reading is the one that reproduces both figures",
                        tuple(rows))


def _revenue(v: ParamValues) -> ArticleTable:
    searches_2012 = v["google_searches_per_month_2012"] * 12
    searches = searches_2012 * v["internet_penetration_2020"] / v["internet_penetration_2012"]
    searches_rounded = round_significant(searches, int(v["searches_per_year_significant_digits"]))
    revenue = v["search_revenue_usd"]
    two_words = v["two_stage_query_words"] + v["two_stage_results"] * (
        v["two_stage_section_words"] + v["two_stage_response_words"])
    cost = api_cost_per_query(two_words, v["openai_davinci_usd_per_1k_tokens"], v["words_per_1k_tokens"],
                              v["cache_hit_rate"], v["openai_gross_margin"])
    optimized = cost / v["optimization_reduction_factor"] / v["in_house_reduction_factor"]
    rev_q, rev_q_exact = revenue / searches_rounded, revenue / searches
    s_in = ("google_searches_per_month_2012", "internet_penetration_2012", "internet_penetration_2020")
    cost_in = ("two_stage_query_words", "two_stage_results", "two_stage_section_words", "two_stage_response_words",
               "openai_davinci_usd_per_1k_tokens", "words_per_1k_tokens", "cache_hit_rate", "openai_gross_margin")
    c_in = cost_in + ("optimization_reduction_factor", "in_house_reduction_factor")
    r_in = s_in + ("search_revenue_usd", "searches_per_year_significant_digits")
    rows = [
        v.figure("revenue.searches_2012", "Google searches in 2012 (100B/month x 12)", searches_2012,
                "searches/year", tag="TEXT", reproduces="§1.3.1", inputs=s_in[:1]),
        v.figure("revenue.searches_per_year", "Searches per year, scaled by internet penetration (34% -> 60%)",
                searches, "searches/year", printed="2.1e12", text="2.1T", tag="TEXT",
                reproduces="§1.3.1 ~2.1T searches/year", note="exact 2.118T", inputs=s_in),
        v.figure("revenue.usd_per_query", "Search revenue per query ($100B / 2.1T, searches rounded as printed)",
                rev_q, "USD/query", printed="0.048", text="$0.048", tag="TEXT",
                reproduces="§1.3.1 $0.048/query", note="the article divides by the rounded 2.1T (docs/article.md §5.4)",
                inputs=s_in + ("search_revenue_usd", "searches_per_year_significant_digits")),
        v.figure("revenue.usd_per_query_unrounded", "Search revenue per query, unrounded searches ($100B / 2.118T)",
                rev_q_exact, "USD/query", tag="TEXT", reproduces="docs/article.md §5.4",
                note="exact; the article prints $0.048 from the rounded 2.1T", inputs=s_in + ("search_revenue_usd",)),
        v.figure("revenue.cost_over_revenue", "2-Stage cost / revenue per query", cost / rev_q, "x",
                printed="1.4", text="1.4x", tag="TEXT", reproduces="§1.3.1 ~1.4x",
                note="$0.066 / $0.048 = 1.375 on the printed figures", inputs=cost_in + r_in),
        v.figure("revenue.optimized_usd_per_query", "2-Stage cost after optimizations (/4) and in-house (/2)",
                optimized, "USD/query", tag="TEXT", reproduces="§1.3.1 (Chinese translation: ~$0.008)",
                note="$0.066 / 8 = $0.00825 on the printed figure", inputs=c_in),
        v.figure("revenue.optimized_share", "Share of revenue per query after the optimizations", optimized / rev_q,
                "fraction", printed="0.15", text="~15%", tag="TEXT", reproduces="§1.0 TLDR / §1.3.1 ~15%",
                note=f"article rounds loosely (docs/article.md §5.1): exact {100 * optimized / rev_q:.1f}%; "
                     "the Chinese translator reaches ~16.7% by rounding $0.00825 to $0.008",
                inputs=c_in + r_in),
        v.figure("revenue.optimized_share_unrounded", "Same share, revenue from unrounded searches",
                optimized / rev_q_exact, "fraction", tag="TEXT", reproduces="docs/article.md §5.1",
                note="a 17.5% reading divides the printed $0.066/8 by $0.0472",
                inputs=c_in + s_in + ("search_revenue_usd",)),
        v.figure("revenue.extra_cost_usd", "Extra cost at $100B of search revenue (share x revenue)",
                optimized / rev_q * revenue, "USD/year", printed="10e9", text="$10B+", at_least=True, tag="TEXT",
                reproduces="§1.0 TLDR $10B+", inputs=c_in + r_in),
    ]
    return ArticleTable("revenue", "Search revenue per query, and LLM search cost against it",
                        "docs/article.md §3.1, §5.1, §5.4", "searches/year = 100B x 12 x 60% / 34%", tuple(rows))


def _inference(v: ParamValues) -> ArticleTable:
    n = v["gpt3_params"]
    flops_per_token = v["inference_flops_per_param_per_token"] * n
    mfu = v["mfu_inference"]
    a100_usd = estimate.price_per_accelerator_hour(v["aws_p4d_usd_per_hour"], v["aws_p4d_accelerators"])
    aws = estimate.inference_cost(flops_per_token, v["a100_peak_flops_per_s"], mfu, a100_usd)
    tpu = {term: estimate.inference_cost(flops_per_token, v["tpu_v4_peak_flops_per_s"], mfu, v[key])
           for term, key in (("1yr", "tpu_v4_usd_per_chip_hour"), ("on_demand", "tpu_v4_usd_per_chip_hour_on_demand"),
                             ("3yr", "tpu_v4_usd_per_chip_hour_3yr"))}
    f_in = ("gpt3_params", "inference_flops_per_param_per_token")
    aws_in = f_in + ("a100_peak_flops_per_s", "mfu_inference", "aws_p4d_usd_per_hour", "aws_p4d_accelerators")
    tpu_in = f_in + ("tpu_v4_peak_flops_per_s", "mfu_inference")
    rows = [
        v.figure("inference.flops_per_1k_tokens", "GPT-3 FLOPs per 1K tokens (2N x 1,000)", 1e3 * flops_per_token,
                "FLOP", tag="TEXT", reproduces="§1.3.2 figure 7", inputs=f_in),
        v.figure("inference.aws.usd_per_a100_hour", "AWS p4d.24xlarge price per A100 ($19.22 / 8)", a100_usd,
                "USD/accelerator-hour", tag="TEXT", reproduces="§1.3.2 figure 7",
                inputs=("aws_p4d_usd_per_hour", "aws_p4d_accelerators")),
        v.figure("inference.aws.a100_seconds_per_1k_tokens", "AWS A100-seconds per 1K tokens (21.3% of 312 TFLOPS)",
                aws["seconds_per_1k_tokens"], "s", tag="INFERRED", reproduces="§1.3.2 figure 7",
                note=f"{aws['seconds_per_1k_tokens'] / v['aws_p4d_accelerators']:.3f} s on the 8-GPU instance",
                inputs=aws_in),
        v.figure("inference.aws.tokens_per_s_per_a100", "AWS tokens/s per A100", aws["tokens_per_s_per_accelerator"],
                "tokens/s", tag="INFERRED", reproduces="§1.3.2 figure 7", inputs=aws_in),
        v.figure("inference.aws.usd_per_1k_tokens", "GPT-3 on AWS p4d (8 x A100, 1-yr reserved): $ per 1K tokens",
                aws["usd_per_1k_tokens"], "USD/1k tokens", printed="0.0035", text="$0.0035", tag="TEXT",
                reproduces="§1.3.2 $0.0035/1K tokens", inputs=aws_in),
        v.figure("inference.tpu.chip_seconds_per_1k_tokens", "TPU v4 chip-seconds per 1K tokens (21.3% of 275 TFLOPS)",
                tpu["1yr"]["seconds_per_1k_tokens"], "s", tag="INFERRED", reproduces="§1.3.2 figure 8",
                inputs=tpu_in),
        v.figure("inference.tpu.usd_per_1k_tokens", "GPT-3 on GCP TPU v4, 1-yr commitment ($2.03/chip-h)",
                tpu["1yr"]["usd_per_1k_tokens"], "USD/1k tokens", printed="0.0034", text="~$0.0034 (\"similar\")",
                tag="INFERRED", reproduces="§1.3.2 figure 9 'similar results'",
                note="the article's TPU price is never stated; $2.03 inferred (docs/article.md §5.5)",
                inputs=tpu_in + ("tpu_v4_usd_per_chip_hour",)),
        v.figure("inference.tpu.usd_per_1k_tokens_on_demand", "GPT-3 on GCP TPU v4, on-demand ($3.22/chip-h)",
                tpu["on_demand"]["usd_per_1k_tokens"], "USD/1k tokens", tag="EXTERNAL", reproduces="docs/article.md §3.3",
                inputs=tpu_in + ("tpu_v4_usd_per_chip_hour_on_demand",)),
        v.figure("inference.tpu.usd_per_1k_tokens_3yr", "GPT-3 on GCP TPU v4, 3-yr commitment ($1.45/chip-h)",
                tpu["3yr"]["usd_per_1k_tokens"], "USD/1k tokens", tag="EXTERNAL", reproduces="docs/article.md §3.3",
                inputs=tpu_in + ("tpu_v4_usd_per_chip_hour_3yr",)),
    ]
    return ArticleTable("inference", "GPT-3 inference cost per 1,000 tokens by cloud provider", "docs/article.md §3.3",
                        "$/1K tokens = 2N x 1,000 / (peak x 21.3% MFU) / 3,600 x $/accelerator-hour", tuple(rows))


def _sanity(v: ParamValues) -> ArticleTable:
    flops_per_token = v["inference_flops_per_param_per_token"] * v["gpt3_params"]
    aws = estimate.inference_cost(flops_per_token, v["a100_peak_flops_per_s"], v["mfu_inference"],
                                  estimate.price_per_accelerator_hour(v["aws_p4d_usd_per_hour"],
                                                                      v["aws_p4d_accelerators"]))
    aws_in = ("gpt3_params", "inference_flops_per_param_per_token", "a100_peak_flops_per_s", "mfu_inference",
              "aws_p4d_usd_per_hour", "aws_p4d_accelerators")
    share = aws["usd_per_1k_tokens"] / v["openai_davinci_usd_per_1k_tokens"]
    jasper = v["jasper_usd_per_100k_words"] / 100e3 * v["words_per_1k_tokens"]
    rows = [
        v.figure("sanity.aws_over_api", "AWS cost / Davinci API price ($0.0035 / $0.02)", share, "fraction",
                printed="0.2", text="~20%", tag="TEXT", reproduces="§1.3.2 ~20% of the API price",
                note=f"exact {100 * share:.1f}%", inputs=aws_in + ("openai_davinci_usd_per_1k_tokens",)),
        v.figure("sanity.api_gross_margin", "Implied API gross margin (machines never idle)", 1 - share, "fraction",
                printed="0.8", text="~80%", tag="TEXT", reproduces="§1.3.2 ~80% gross margin",
                note=f"exact {100 * (1 - share):.1f}%, against the 75% assumed in §1.3.1",
                inputs=aws_in + ("openai_davinci_usd_per_1k_tokens",)),
        v.figure("sanity.jasper_usd_per_1k_tokens", "Jasper $82 / 100K words, per 1K tokens (750 words)", jasper,
                "USD/1k tokens", printed="1.09", text="$1.09", tag="TEXT", reproduces="§1.9 Jasper $1.09/1K tokens",
                note="the article's $1.09 = $82/75K, i.e. 100K words taken as 75K tokens, inverting the ratio "
                     "(docs/article.md §5.2); the conclusion holds either way",
                inputs=("jasper_usd_per_100k_words", "words_per_1k_tokens")),
        v.figure("sanity.jasper_gross_margin", "Jasper gross margin on Davinci ($0.02/1K), one sample",
                1 - v["openai_davinci_usd_per_1k_tokens"] / jasper, "fraction", printed="0.75", text="75%+",
                at_least=True, tag="TEXT", reproduces="§1.0 TLDR / §1.9 75%+ gross margin",
                inputs=("jasper_usd_per_100k_words", "words_per_1k_tokens", "openai_davinci_usd_per_1k_tokens")),
    ]
    return ArticleTable("sanity", "Sanity checks against API prices", "docs/article.md §3.2, §3.10, §5.2",
                        "cost / price and 1 - cost / price", tuple(rows))


_TRAINED = (("gpt3", "GPT-3"), ("gopher", "Gopher"), ("mt_nlg", "MT-NLG"), ("palm", "PaLM"),
            ("chinchilla", "Chinchilla"))
_TRAINING_PRINTED = {"gpt3": ("1.4e6", "$1.4M", "§1.0 TLDR / §1.4 $1.4M"),
                     "palm": ("11.2e6", "$11.2M", "§1.0 TLDR / §1.9 $11.2M")}


def _training(v: ParamValues) -> ArticleTable:
    rows = []
    peak, mfu = v["tpu_v4_peak_flops_per_s"], v["mfu_training"]
    price_keys = {"1yr": "tpu_v4_usd_per_chip_hour", "on_demand": "tpu_v4_usd_per_chip_hour_on_demand",
                  "3yr": "tpu_v4_usd_per_chip_hour_3yr"}
    for model, name in _TRAINED:
        n, d = v[f"{model}_params"], v[f"{model}_training_tokens"]
        flops = v["training_flops_per_param_per_token"] * n * d
        inputs = (f"{model}_params", f"{model}_training_tokens", "training_flops_per_param_per_token",
                  "tpu_v4_peak_flops_per_s", "mfu_training")
        tag = "TEXT" if model in _TRAINING_PRINTED else "INFERRED"
        cost = estimate.training_cost(flops, peak, mfu, v[price_keys["1yr"]])
        rows.append(v.figure(f"training.{model}.flops", f"{name}: 6ND training FLOPs ({n / 1e9:g}B x {d / 1e9:g}B)",
                            flops, "FLOP", tag=tag, reproduces="§1.4 figure 11", inputs=inputs[:3]))
        rows.append(v.figure(f"training.{model}.chip_hours", f"{name}: TPU v4 chip-hours at 46.2% MFU",
                            cost["accelerator_hours"], "h", tag="INFERRED", reproduces="§1.4 figure 11",
                            inputs=inputs))
        printed, text, where = _TRAINING_PRINTED.get(model, (None, None, "§1.4 figure 11 (row not recovered)"))
        note = "" if printed else "the article names the model but its cost cell is lost; rebuilt"
        if model == "palm":
            note = "6ND with D = 780B (PaLM paper); PaLM's own 2.56e24 FLOPs (with attention) gives $11.36M"
        rows.append(v.figure(f"training.{model}.usd", f"{name}: cost on TPU v4 at $2.03/chip-hour",
                            cost["usd_total"], "USD", printed=printed, text=text, tag=tag, reproduces=where,
                            note=note, inputs=inputs + (price_keys["1yr"],)))
        if printed:
            rows.append(v.figure(f"training.{model}.implied_usd_per_chip_hour",
                                f"{name}: TPU v4 price that gives exactly {text}",
                                float(printed) / cost["accelerator_hours"], "USD/chip-hour", printed="2.03",
                                text="$2.03 (inferred)", tag="INFERRED", reproduces="docs/article.md §3.4, §5.5",
                                note="the check that points to the 1-yr commitment price", inputs=inputs))
            for term in ("on_demand", "3yr"):
                other = estimate.training_cost(flops, peak, mfu, v[price_keys[term]])
                rows.append(v.figure(f"training.{model}.usd_{term}",
                                    f"{name}: cost at TPU v4 {term.replace('_', '-')} (${v[price_keys[term]]:.2f})",
                                    other["usd_total"], "USD", tag="EXTERNAL", reproduces="docs/article.md §3.4",
                                    inputs=inputs + (price_keys[term],)))
    return ArticleTable("training", "Training cost of LLMs on GCP TPU v4 chips (46.2% MFU)", "docs/article.md §3.4",
                        "cost = 6ND / (275 TFLOPS x 46.2%) / 3,600 x $/chip-hour; only GPT-3 and PaLM costs are "
                        "stated in the text, the other rows of the lost table are rebuilt", tuple(rows))


def _memory(v: ParamValues) -> ArticleTable:
    per_param = v["training_bytes_per_param"]
    bert, gpt3 = v["bert_large_params"] * per_param, v["gpt3_params"] * per_param
    h100 = v["h100_memory_bytes"]
    rows = [
        v.figure("memory.bytes_per_param", "Training state per parameter (Adam, mixed precision)", per_param,
                "B/param", printed="20", text="20 bytes", tag="TEXT", reproduces="§1.8 20 bytes/param",
                inputs=("training_bytes_per_param",)),
        v.figure("memory.bert_large_bytes", "BERT-Large (340M params) training state", bert, "B", printed="6.8e9",
                text="6.8 GB", tag="TEXT", reproduces="§1.8 BERT-Large 6.8 GB",
                inputs=("bert_large_params", "training_bytes_per_param")),
        v.figure("memory.gpt3_bytes", "GPT-3 (175B params) training state", gpt3, "B", printed="3.5e12",
                text="3.5 TB", tag="TEXT", reproduces="§1.8 GPT-3 3.5 TB",
                inputs=("gpt3_params", "training_bytes_per_param")),
        v.figure("memory.gpt3_h100_ratio", "GPT-3 training state / 80 GB", gpt3 / h100, "x", tag="TEXT",
                reproduces="docs/article.md §3.8", inputs=("gpt3_params", "training_bytes_per_param", "h100_memory_bytes")),
        v.figure("memory.gpt3_min_h100s", "Fewest 80 GB H100s that hold GPT-3's training state",
                estimate.min_accelerators_for_state(gpt3, h100), "accelerators", printed="44", text="44 H100s",
                tag="TEXT", reproduces="§1.8 at least 44 H100s", note="ceil(43.75); activations not counted",
                inputs=("gpt3_params", "training_bytes_per_param", "h100_memory_bytes")),
    ]
    return ArticleTable("memory", "Training memory at 20 bytes per parameter", "docs/article.md §3.8",
                        "state = 20 B x N; accelerators >= ceil(state / memory per accelerator)", tuple(rows))


def _chinchilla(v: ParamValues) -> ArticleTable:
    consts = dict(e=v["chinchilla_loss_e"], a=v["chinchilla_loss_a"], b=v["chinchilla_loss_b"],
                  alpha=v["chinchilla_loss_alpha"], beta=v["chinchilla_loss_beta"])
    c_in = ("chinchilla_loss_e", "chinchilla_loss_a", "chinchilla_loss_b", "chinchilla_loss_alpha",
            "chinchilla_loss_beta")
    one_t = chinchilla_loss_terms(v["one_t_params"], v["one_t_training_tokens"], **consts)
    t_in = c_in + ("one_t_params", "one_t_training_tokens")
    rows = [
        v.figure("chinchilla.one_t.param_term", "1T params on 300B tokens: parameter term A/N^alpha",
                one_t["param_term"], "nats", printed="0.03", text="0.03", tag="TEXT",
                reproduces="§1.6 figure 19 '0.03 model parameter loss'", inputs=t_in),
        v.figure("chinchilla.one_t.data_term", "1T params on 300B tokens: data term B/D^beta", one_t["data_term"],
                "nats", printed="0.25", text="0.25", tag="TEXT",
                reproduces="§1.6 figure 19 '0.25 training token loss'", inputs=t_in),
        v.figure("chinchilla.one_t.loss", "1T params on 300B tokens: predicted loss", one_t["loss"], "nats",
                tag="EXTERNAL", reproduces="§1.6 figure 19", inputs=t_in),
    ]
    losses = {}
    for model, name in _TRAINED:
        terms = chinchilla_loss_terms(v[f"{model}_params"], v[f"{model}_training_tokens"], **consts)
        losses[model] = terms["loss"]
        m_in = c_in + (f"{model}_params", f"{model}_training_tokens")
        for part, label in (("param_term", "A/N^alpha"), ("data_term", "B/D^beta"), ("loss", "loss L")):
            rows.append(v.figure(f"chinchilla.{model}.{part}", f"{name}: {label}", terms[part], "nats",
                                tag="EXTERNAL", reproduces="§1.6 figure 18 (values not recovered)", inputs=m_in))
    rows.append(v.figure("chinchilla.one_t_minus_chinchilla", "1T/300B loss - Chinchilla loss (> 0: 1T underperforms)",
                        one_t["loss"] - losses["chinchilla"], "nats", tag="TEXT",
                        reproduces="§1.6 'would still underperform Chinchilla'",
                        note="positive, as the text says", inputs=t_in + ("chinchilla_params",
                                                                           "chinchilla_training_tokens")))
    rows.append(v.figure("chinchilla.fewer_params", "Chinchilla has fewer parameters than GPT-3 (1 - 70/175)",
                        1 - v["chinchilla_params"] / v["gpt3_params"], "fraction", printed="0.60", text="60% fewer",
                        tag="TEXT", reproduces="§1.6 60% fewer parameters",
                        inputs=("chinchilla_params", "gpt3_params")))
    return ArticleTable("chinchilla", "Chinchilla's parametric loss: L(N, D) = E + A/N^alpha + B/D^beta",
                        "docs/article.md §3.6",
                        "Hoffmann et al. 2022 approach-3 fit: E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28",
                        tuple(rows))


def _utilization(v: ParamValues) -> ArticleTable:
    history = (("gpt3", "GPT-3 175B on V100 (2020)", "0.213", "TEXT", "§1.8 21.3%"),
               ("gopher", "Gopher 280B on 4096 TPU v3", "0.325", "EXTERNAL", "§1.8 figure 28 (PaLM Table 3)"),
               ("mt_nlg", "MT-NLG 530B on 2240 A100 (Jan 2022)", "0.302", "TEXT", "§1.8 30.2%"),
               ("palm", "PaLM 540B on 6144 TPU v4", "0.462", "TEXT", "§1.8 46.2%"),
               ("korthikanti", "MT-NLG with selective recomputation, 280 A100 (Korthikanti et al.)", "0.560",
                "TEXT", "§1.8 2/9/23 edit 56.0%"),
               ("gpt2_single_a100", "GPT-2 on a single A100", "0.357", "TEXT", "§1.8 35.7%"))
    rows = [v.figure(f"utilization.{key}", label, v[f"mfu_history_{key}"], "fraction", printed=printed,
                    text=f"{100 * float(printed):.1f}%", tag=tag, reproduces=where, inputs=(f"mfu_history_{key}",))
            for key, label, printed, tag, where in history]
    rows.append(v.figure("utilization.palm_over_gpt3", "PaLM MFU / GPT-3 MFU",
                        v["mfu_history_palm"] / v["mfu_history_gpt3"], "x", printed="2.2", text="2.2x", tag="TEXT",
                        reproduces="§1.8 2.2x GPT-3's MFU", inputs=("mfu_history_palm", "mfu_history_gpt3")))
    return ArticleTable("utilization", "Model FLOPs utilization of select LLMs (training)", "docs/article.md §3.8",
                        "MFU = model FLOP/s / dense peak FLOP/s (PaLM appendix B)", tuple(rows))


def _summary(v: ParamValues) -> ArticleTable:
    params = v["chinchilla_params"] / v["gpt3_params"]
    cost_per_flop = v["gpt3_in_house_h100_usd"] / v["gpt3_in_house_v100_usd"]
    mfu = v["mfu_history_gpt3"] / v["mfu_history_palm"]
    p_in, c_in, m_in = (("chinchilla_params", "gpt3_params"), ("gpt3_in_house_h100_usd", "gpt3_in_house_v100_usd"),
                        ("mfu_history_gpt3", "mfu_history_palm"))
    where = "§1.5 figure 13 (cells lost)"
    rows = [
        v.figure("summary.params_reduction", "Parameter count N: 175B -> 70B (Chinchilla parity)", 1 - params,
                "fraction", printed="0.60", text="-60%", tag="INFERRED", reproduces=where, inputs=p_in,
                note="factor stated in the text (§1.6); its place in the table inferred"),
        v.figure("summary.cost_per_flop_reduction", "Cost/FLOP: V100 $744k -> H100 $312k (in-house GPT-3)",
                1 - cost_per_flop, "fraction", printed="0.58", text="-58%", tag="INFERRED", reproduces=where,
                inputs=c_in, note="factor stated in the text (§1.7); its place in the table inferred"),
        v.figure("summary.mfu_reduction", "Utilization: 21.3% -> 46.2% MFU (cost x 21.3/46.2)", 1 - mfu, "fraction",
                tag="INFERRED", reproduces=where, inputs=m_in, note="the text states 2.2x, not the reduction"),
        v.figure("summary.inference_reduction", "Inference: parameters x cost/FLOP (MFU stays 21.3%)",
                1 - params * cost_per_flop, "fraction", printed="0.80", text=">80%", at_least=True, tag="INFERRED",
                reproduces="§1.0 TLDR ~80% / §1.5 >80%", inputs=p_in + c_in,
                note="combination inferred (docs/article.md §3.9, §5.7)"),
        v.figure("summary.training_reduction", "Training: cost/FLOP x utilization", 1 - cost_per_flop * mfu,
                "fraction", printed="0.80", text=">80%", at_least=True, tag="INFERRED",
                reproduces="§1.0 TLDR ~80% / §1.9 >80%", inputs=c_in + m_in,
                note="combination inferred (docs/article.md §3.9, §5.7)"),
        v.figure("summary.params_x_mfu_reduction", "Parameters x utilization", 1 - params * mfu, "fraction",
                tag="INFERRED", reproduces="docs/article.md §3.9", inputs=p_in + m_in),
        v.figure("summary.all_three_reduction", "All three levers together", 1 - params * cost_per_flop * mfu,
                "fraction", tag="INFERRED", reproduces="docs/article.md §3.9", inputs=p_in + c_in + m_in),
    ]
    return ArticleTable("summary", "Summary of cost reductions vs. GPT-3 in 2020 at performance parity (INFERRED)",
                        "docs/article.md §3.9, §5.7",
                        "INFERRED: the table image is lost; each lever's factor is stated or derivable, how the "
                        "article combined them per column is not", tuple(rows))


def reproduce_article(overrides: Mapping[str, float] | None = None, *, path: str | Path | None = None
                      ) -> ArticleReproduction:
    """Every table of the article, recomputed. `overrides` replaces parameter values by key."""
    params = load_article_params(path)
    values = ParamValues(params, overrides or {}, path or ARTICLE_CSV)
    tables = tuple(build(values) for build in (_search_cost, _revenue, _sanity, _inference, _training, _memory,
                                                _chinchilla, _utilization, _summary))
    return ArticleReproduction(tables, tuple(params.values()), dict(overrides or {}))


__all__ = ["ArticleParam", "Figure", "ArticleTable", "ArticleReproduction", "load_article_params",
           "reproduce_article", "api_cost_per_query", "chinchilla_loss_terms", "round_significant", "SOURCE_TAGS",
           "ARTICLE_CSV"]
