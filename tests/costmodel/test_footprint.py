"""The memory model's formulas on planted shapes (no torch): each part, the peak, Korthikanti's count."""

from __future__ import annotations

import pytest

from llmecon.costmodel.architecture import shape_from_config
from llmecon.costmodel.footprint import (HEADROOM_FRACTION, autocast_copy_bytes, footprint, layer_activation_bytes,
                                         train_logits_bytes, usable_bytes)
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError

# d = 64, I = 256, H = 4, K = 2, h = 16, V = 1000, L = 2; untied
LLAMA = shape_from_config({"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 256,
                           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2},
                          name="planted")
# Korthikanti et al.'s layer: LayerNorm, MLP of 4h with GeLU, as many KV heads as query heads
GPT = shape_from_config({"model_type": "gpt2", "vocab_size": 1000, "n_embd": 64, "n_layer": 2, "n_head": 4},
                        name="gpt")


def test_footprint_korthikanti_count_without_dropout_masks_and_scores():
    """Korthikanti et al. 2022 §4.1: sbh(34 + 5as/h) bytes per layer in 16-bit. A fused sdpa keeps no a·s²
    scores (the 5as/h term) but an fp32 log-sum-exp per head and position, and these configs have no dropout
    (the two sbh of masks): 32·sbh + 4·a·sb."""
    s, b, h, a = 128, 2, GPT.hidden_size, GPT.num_attention_heads
    got = layer_activation_bytes(GPT, b * s, compute_bytes=2, residual_bytes=2, seq_len=s)
    assert got == s * b * h * (34 - 2) + 4 * a * s * b


def test_footprint_llama_layer_under_autocast_counts_each_saved_tensor():
    """Per token: fp32 stream (input, sum after attention) and RMSNorm's normalised tensors, 4·d·4; five bf16
    casts of the norms' outputs (q, k, v, gate, up), 5·d·2; q, k, v and the attention output, 2·(2q + 2kv);
    the log-sum-exp, 4·H; gate, act(gate), up and their product, 4·I·2."""
    d, q, kv, i, H = 64, 64, 32, 256, 4
    per_token = 4 * d * 4 + 5 * d * 2 + 2 * (2 * q + 2 * kv) + 4 * H + 4 * i * 2
    assert layer_activation_bytes(LLAMA, 10, compute_bytes=2, residual_bytes=4, seq_len=5) == 10 * per_token


def test_footprint_training_state_parts_are_adamw_with_fp32_masters():
    f = footprint(LLAMA, "train", batch_size=2, seq_len=8, dtype="bf16")
    n = LLAMA.params_total
    parts = f["parts_bytes"]
    assert (parts["weights"], parts["gradients"], parts["optimizer"]) == (4 * n, 4 * n, 8 * n)
    assert parts["kv_cache"] == 0
    # bf16 copies of every matmul weight: all but the token table and the norms (the untied head is a matmul)
    norms = (2 * 2 + 1) * 64
    assert parts["autocast_copies"] == autocast_copy_bytes(LLAMA, 2) == 2 * (n - 1000 * 64 - norms)
    assert parts["logits"] == train_logits_bytes(LLAMA, 16) == 12 * 16 * 1000
    fp32 = footprint(LLAMA, "train", batch_size=2, seq_len=8, dtype="fp32")["parts_bytes"]
    assert fp32["autocast_copies"] == 0 and fp32["activations"] > parts["activations"]


def test_footprint_training_peak_is_the_larger_moment_not_the_sum():
    """Small batch: the optimizer step (weights, AdamW, gradients) sets the peak; large batch: the backward's
    start (weights, AdamW, autocast copies, activations, logits). Gradients and activations never add up."""
    small = footprint(LLAMA, "train", batch_size=1, seq_len=1, dtype="bf16")
    p = small["parts_bytes"]
    assert small["peak_at"] == "train: the optimizer step"
    assert small["total_bytes"] == p["weights"] + p["optimizer"] + p["gradients"]
    big = footprint(LLAMA, "train", batch_size=8, seq_len=512, dtype="bf16")
    q = big["parts_bytes"]
    assert big["peak_at"] == "train: the backward pass begins"
    assert big["total_bytes"] == q["weights"] + q["optimizer"] + q["autocast_copies"] + q["activations"] + q["logits"]
    assert big["total_bytes"] < sum(q.values())


def test_footprint_decode_cache_holds_prompt_and_new_tokens():
    f = footprint(LLAMA, "decode", batch_size=3, seq_len=100, new_tokens=28, dtype="bf16")
    assert f["parts_bytes"]["kv_cache"] == 3 * 128 * 2 * LLAMA.num_hidden_layers * LLAMA.kv_dim * 2
    assert f["parts_bytes"]["weights"] == 2 * LLAMA.params_total
    assert f["parts_bytes"]["gradients"] == f["parts_bytes"]["optimizer"] == 0


def test_footprint_grows_with_batch_and_sequence():
    for phase in ("prefill", "decode", "train"):
        totals = [footprint(LLAMA, phase, batch_size=b, seq_len=s, new_tokens=4, dtype="bf16")["total_bytes"]
                  for b, s in ((1, 64), (4, 64), (4, 256))]
        assert totals == sorted(totals) and totals[0] < totals[-1], phase


def test_footprint_checkpointing_and_eager_move_activations_the_way_they_should():
    base = footprint(LLAMA, "train", batch_size=4, seq_len=256, dtype="bf16")["parts_bytes"]["activations"]
    ckpt = footprint(LLAMA, "train", batch_size=4, seq_len=256, dtype="bf16",
                     activation_checkpointing=True)["parts_bytes"]["activations"]
    eager = footprint(LLAMA, "train", batch_size=4, seq_len=256, dtype="bf16",
                      attn_implementation="eager")["parts_bytes"]["activations"]
    assert ckpt < base < eager


def test_footprint_llama_3_8b_training_state_is_about_128_gb():
    """The issue's figure: fp32 masters + gradients + two AdamW moments = 16 bytes a parameter."""
    f = footprint(load_model_shape("llama-3-8b"), "train", batch_size=1, seq_len=512, dtype="bf16")
    p = f["parts_bytes"]
    assert p["weights"] + p["gradients"] + p["optimizer"] == pytest.approx(128.5e9, rel=0.01)


def test_footprint_usable_memory_keeps_the_headroom():
    assert usable_bytes(100e9) == pytest.approx(100e9 * (1 - HEADROOM_FRACTION))
    assert 0 < HEADROOM_FRACTION < 0.5


@pytest.mark.parametrize("kwargs, message", [
    ({"phase": "serve"}, "unknown phase"),
    ({"dtype": "fp64"}, "unknown dtype"),
    ({"batch_size": 0}, "batch_size"),
    ({"phase": "decode", "new_tokens": 0}, "new_tokens"),
])
def test_footprint_bad_input_is_a_user_error(kwargs, message):
    args = {"phase": "prefill", "batch_size": 1, "seq_len": 8, "dtype": "bf16", **kwargs}
    phase = args.pop("phase")
    with pytest.raises(UserError, match=message):
        footprint(LLAMA, phase, **args)
