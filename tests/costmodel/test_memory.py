"""Bytes: weights, KV cache, decode traffic (dense and MoE), training state (the article's 20 B/param)."""

import math

import pytest

from llmecon.costmodel.presets import load_model_shape
from llmecon.costmodel.memory import (
    BYTES_PER_ELEMENT, decode_bytes, decode_step_bytes, decode_weight_bytes_read, expected_experts_touched,
    kv_cache_bytes_per_token, training_memory_bytes, weight_bytes,
)
from llmecon.errors import UserError


def test_memory_weight_bytes_per_dtype():
    s = load_model_shape("llama-2-7b")
    for dtype, size in BYTES_PER_ELEMENT.items():
        assert weight_bytes(s, dtype) == s.params_total * size
    moe = load_model_shape("mixtral-8x7b")
    assert weight_bytes(moe, "bf16") == 2 * moe.params_total  # every expert is resident


@pytest.mark.parametrize("model, expected", [
    ("llama-2-7b", 2 * 32 * 32 * 128 * 2),    # MHA: 0.5 MiB per token in bf16
    ("llama-3-8b", 2 * 32 * 8 * 128 * 2),     # GQA, 8 KV heads: 128 KiB
    ("gemma-2b", 2 * 18 * 1 * 256 * 2),       # multi-query, head_dim 256
    ("gpt2", 2 * 12 * 768 * 2),
])
def test_memory_kv_cache_bytes_per_token(model, expected):
    assert kv_cache_bytes_per_token(load_model_shape(model), "bf16") == expected


def test_memory_decode_step_bytes_dense():
    tied = load_model_shape("llama-3.2-1b")       # LM head reads the shared table: all weights read
    assert decode_weight_bytes_read(tied, "bf16", 1) == weight_bytes(tied, "bf16")
    untied = load_model_shape("llama-2-7b")       # the input table is only looked up, one row per sequence
    table_rows_skipped = (32000 - 4) * 4096
    assert decode_weight_bytes_read(untied, "fp16", 4) == 2 * (untied.params_total - table_rows_skipped)
    kv = kv_cache_bytes_per_token(untied, "fp16")
    assert decode_step_bytes(untied, "fp16", 4, 1000) == decode_weight_bytes_read(untied, "fp16", 4) + 4 * 1000 * kv
    gpt2 = load_model_shape("gpt2")               # tied token table, learned position table looked up
    assert decode_weight_bytes_read(gpt2, "fp32", 1) == 4 * (gpt2.params_total - (1024 - 1) * 768)


def test_memory_moe_experts_touched():
    moe = load_model_shape("mixtral-8x7b")
    assert expected_experts_touched(moe, 1) == pytest.approx(2)
    assert expected_experts_touched(moe, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_experts_touched(moe, 256) == pytest.approx(8, rel=1e-6)
    assert expected_experts_touched(load_model_shape("tiny"), 64) == 1
    expert = 3 * 4096 * 14336
    untied_table = (32000 - 1) * 4096
    # batch 1 reads the active parameters (minus the unread embedding rows)
    assert decode_weight_bytes_read(moe, "bf16", 1) == pytest.approx(2 * (moe.params_active - untied_table))
    # a large batch touches every expert
    big = decode_weight_bytes_read(moe, "bf16", 512)
    assert big == pytest.approx(2 * (moe.params_total - (32000 - 512) * 4096), rel=1e-6)
    assert decode_weight_bytes_read(moe, "bf16", 4) > decode_weight_bytes_read(moe, "bf16", 1)
    assert moe.params_total - moe.params_active == 32 * 6 * expert


def test_memory_decode_bytes_is_sum_of_steps():
    s = load_model_shape("qwen2.5-0.5b")
    steps = sum(decode_step_bytes(s, "bf16", 3, 50 + k + 1) for k in range(9))
    assert decode_bytes(s, "bf16", 3, 50, 9) == pytest.approx(steps)
    assert decode_bytes(s, "bf16", 3, 50, 0) == 0


def test_memory_training_memory_article_20_bytes():
    """docs/article.md §3.8: 175e9 x 20 = 3.5 TB for GPT-3; / 80 GB = 43.75 -> 44 H100s."""
    s = load_model_shape("gpt3-175b")
    m = training_memory_bytes(s)
    assert m["bytes_per_param"] == 20 and m["params"] == s.params_total
    assert m["total_bytes"] == 20 * s.params_total
    assert m["total_bytes"] == pytest.approx(3.5e12, rel=0.005)
    assert math.ceil(m["total_bytes"] / 80e9) == 44
    assert sum(m["breakdown_bytes_per_param"].values()) == 20
    assert sum(m["breakdown_bytes"].values()) == pytest.approx(m["total_bytes"])
    assert m["breakdown_bytes_per_param"]["fp32_master_grads"] == 4


@pytest.mark.parametrize("bpp", [16, 18, 12.5])
def test_memory_training_memory_other_accountings(bpp):
    s = load_model_shape("tiny")
    m = training_memory_bytes(s, bpp)
    assert sum(m["breakdown_bytes_per_param"].values()) == bpp
    assert m["total_bytes"] == bpp * s.params_total


@pytest.mark.parametrize("call, message", [
    (lambda s: weight_bytes(s, "fp4"), "unknown dtype 'fp4'"),
    (lambda s: kv_cache_bytes_per_token(s, "float16"), "unknown dtype"),
    (lambda s: decode_step_bytes(s, "bf16", 0, 10), "batch_size must be > 0"),
    (lambda s: decode_step_bytes(s, "bf16", 1, -1), "context_len must be > 0"),
    (lambda s: decode_bytes(s, "bf16", 1, 1.5, 3), "prompt_len must be a whole number"),
    (lambda s: training_memory_bytes(s, 0), "bytes_per_param must be > 0"),
    (lambda s: training_memory_bytes(s, float("nan")), "bytes_per_param must be finite"),
])
def test_memory_bad_input(call, message):
    with pytest.raises(UserError, match=message):
        call(load_model_shape("tiny"))
