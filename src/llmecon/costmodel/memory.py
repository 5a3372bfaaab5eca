"""Bytes: weights held, KV cache, bytes read per decode step, training state.

Decode is usually memory-bound: each step reads the weights it uses once (shared by the batch) and
every sequence's KV cache. These functions count that traffic; they leave out activations, the
logits, and any re-reads a kernel makes because a tile does not fit in cache.
"""

from __future__ import annotations

from llmecon.costmodel.architecture import ModelShape
from llmecon.errors import UserError, require_count, require_positive

BYTES_PER_ELEMENT = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


def _bpe(dtype: str) -> int:
    try:
        return BYTES_PER_ELEMENT[dtype]
    except KeyError:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(BYTES_PER_ELEMENT)}") from None


def weight_bytes(shape: ModelShape, dtype: str) -> float:
    """All parameters resident in memory: params_total × bytes per element (every expert of a MoE)."""
    return float(shape.params_total * _bpe(dtype))


def kv_cache_bytes_per_token(shape: ModelShape, dtype: str) -> float:
    """One position's keys and values in every layer: 2 · L · K · h · bytes (K = KV heads, so GQA and
    multi-query shrink it; one sequence)."""
    return float(2 * shape.num_hidden_layers * shape.kv_dim * _bpe(dtype))


def expected_experts_touched(shape: ModelShape, batch_size: int) -> float:
    """Mean number of distinct experts one MoE layer runs for batch_size tokens: E·(1 − (1 − k/E)^B).

    Assumes each token picks its k experts uniformly and independently of the other tokens (a token
    misses a given expert with probability 1 − k/E). B = 1 gives exactly k; large B approaches E.
    Real routers are not uniform, and skew lowers the count; this is the expectation, not a bound.
    Dense models: 1.
    """
    B = require_count("batch_size", batch_size)
    E, k = shape.num_experts, shape.num_experts_per_tok
    if E == 1:
        return 1.0
    return E * (1.0 - (1.0 - k / E) ** B)


def decode_weight_bytes_read(shape: ModelShape, dtype: str, batch_size: int) -> float:
    """Weight bytes one decode step reads (once for the whole batch).

    Every matrix a token uses is read whole, except the input tables: an untied token embedding and
    a learned position table are looked up row by row (B rows each), while a tied embedding is read
    whole anyway by the LM head. MoE: only the experts the batch touches
    (`expected_experts_touched`) are read.
    """
    B = require_count("batch_size", batch_size)
    b = shape.param_breakdown()
    params = shape.params_total
    if not shape.tie_word_embeddings:
        params -= b["token_embedding"] - min(B, shape.vocab_size) * shape.embed_dim
    if b["position_embedding"]:
        params -= b["position_embedding"] - min(B, shape.position_embeddings) * shape.hidden_size
    if shape.is_moe:
        per_expert = b["mlp"] / (shape.num_hidden_layers * shape.num_experts)
        untouched = shape.num_experts - expected_experts_touched(shape, B)
        params -= shape.num_hidden_layers * untouched * per_expert
    return float(params * _bpe(dtype))


def decode_step_bytes(shape: ModelShape, dtype: str, batch_size: int, context_len: int) -> float:
    """Bytes one decode step reads: the weights it uses (`decode_weight_bytes_read`) plus, for each of
    the batch_size sequences, the KV cache of the context_len positions it attends."""
    B, c = require_count("batch_size", batch_size), require_count("context_len", context_len)
    return decode_weight_bytes_read(shape, dtype, B) + B * c * kv_cache_bytes_per_token(shape, dtype)


def decode_bytes(shape: ModelShape, dtype: str, batch_size: int, prompt_len: int, new_tokens: int) -> float:
    """Sum of decode_step_bytes over new_tokens steps after a prompt of prompt_len (step k attends
    prompt_len + k + 1 positions, as in flops.decode_flops)."""
    B = require_count("batch_size", batch_size)
    P, n = require_count("prompt_len", prompt_len, allow_zero=True), require_count("new_tokens", new_tokens, allow_zero=True)
    positions = n * P + n * (n + 1) // 2     # sum over k of (P + k + 1)
    return n * decode_weight_bytes_read(shape, dtype, B) + B * positions * kv_cache_bytes_per_token(shape, dtype)


# Training state per parameter, mixed precision with Adam, no activations.
# 20 B: Megatron-LM's accounting for fp16 parameters and fp16 gradients — fp16 params 2 + fp16 grads 2
# + fp32 main params 4 + fp32 main grads 4 + Adam momentum 4 + variance 4 — the 20 bytes per parameter
# of the MT-NLG paper (Smith et al. 2022, §2, cited by the article as ref 27). Megatron Core's
# distributed-optimizer guide tabulates 20 (fp16 params, fp16 grads), 18 (fp32 grads: no separate
# fp16 copy) and 16 bytes (https://docs.nvidia.com/megatron-core/developer-guide/latest/distrib_optimizer.html).
# 16 B here: ZeRO's mixed-precision Adam, 2 + 2 + K with K = 12 (Rajbhandari et al. 2020, §3.1),
# which keeps no fp32 gradient copy.
TRAINING_STATE_BREAKDOWNS: dict[int, dict[str, int]] = {
    20: {"fp16_params": 2, "fp16_grads": 2, "fp32_master_params": 4, "fp32_master_grads": 4,
         "adam_momentum_fp32": 4, "adam_variance_fp32": 4},
    18: {"fp16_params": 2, "fp32_grads": 4, "fp32_master_params": 4, "adam_momentum_fp32": 4,
         "adam_variance_fp32": 4},
    16: {"fp16_params": 2, "fp16_grads": 2, "fp32_master_params": 4, "adam_momentum_fp32": 4,
         "adam_variance_fp32": 4},
}


def training_memory_bytes(shape: ModelShape, bytes_per_param: float = 20) -> dict:
    """Training state (weights, gradients, optimizer) in bytes: params_total × bytes_per_param.

    The article: about 20 bytes per parameter (GPT-3: 175e9 × 20 = 3.5 TB). For 20, 18 and 16 the
    breakdown names each piece (see TRAINING_STATE_BREAKDOWNS); any other value is taken as given,
    with one unnamed entry. Activations, buffers and fragmentation are not included.
    """
    bpp = require_positive("bytes_per_param", bytes_per_param)
    n = shape.params_total
    key = int(bpp) if float(bpp).is_integer() else None
    per_param = dict(TRAINING_STATE_BREAKDOWNS.get(key, {"state_as_given": bpp}))
    return {
        "params": n,
        "bytes_per_param": bpp,
        "total_bytes": float(n * bpp),
        "breakdown_bytes_per_param": per_param,
        "breakdown_bytes": {k: float(n * v) for k, v in per_param.items()},
        "source": "Smith et al. 2022 (MT-NLG) and Megatron Core distributed-optimizer guide (20, 18 B); "
                  "Rajbhandari et al. 2020 (ZeRO) §3.1 (16 B)",
    }
