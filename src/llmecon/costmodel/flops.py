"""FLOPs of prefill, decode and training steps, under four named conventions.

A FLOP is one floating-point add or multiply: a multiply-accumulate is 2. Each convention is written
once, below, in `_forward` (one forward over `queries` new positions per sequence, each attending
`keys` positions on average, with the LM head on `head_positions` of them); the phases call it.

Notation: B batch, T tokens per sequence, c context length (positions one decode query attends,
itself included), L layers, d_attn = H·h (query heads × head_dim), N = `params_active`
(= `params_total` for dense models), N_ne = `params_non_embedding_active` (Kaplan's N, minus the
unrouted experts for MoE).

article
    2N per token forward, 6N per token trained (the article, §1.3/§1.5; Kaplan et al. 2020 §2.1,
    the "C ≈ 6N" rule). Attention and the LM head's position are ignored. For MoE, N is the active
    parameter count (2N over *all* parameters would charge every expert to every token).
    prefill = 2N·B·T, decode step = 2N·B, train = 6N·B·T.

non_embedding
    PaLM (Chowdhery et al. 2022), appendix B: training costs 6N + 12·L·H·Q·T per token, i.e. a forward
    of 2·N_ne + 4·L·d_attn·T: the matmuls of the non-embedding weights plus QKᵀ and AV
    (2·d_attn·T each per layer) over all T positions of the sequence, masked or not. Kaplan et al.
    2020, Table 1 writes C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn (it counts QKᵀ only); we follow PaLM.
    Embeddings and the LM head are out (the "non-embedding" N leaves them out, see architecture).
    prefill = B·T·(2·N_ne + 4·L·d_attn·T); decode step = B·(2·N_ne + 4·L·d_attn·c);
    train = 3 × forward over T.

causal
    `non_embedding` with the attention term counting only the (query, key) pairs a causal mask keeps:
    in a prefill of T, query i attends i+1 keys, on average (T+1)/2 — the "halved" attention term
    (exactly half plus the diagonal). A decode query attends all c positions, so decode is the same
    as `non_embedding`. prefill = B·T·(2·N_ne + 4·L·d_attn·(T+1)/2); train = 3 × forward.

executed
    The matmuls eager attention runs (`attn_implementation="eager"`), 2·m·n·k each, as
    torch.utils.flop_counter.FlopCounterMode counts them (the tests check it within 1 %):
    every linear the token goes through (q/k/v/o with GQA sizes, gated or plain MLP, MoE router and
    its k experts, OPT's projections), QKᵀ and AV for every query head over the full T×T score
    matrix (eager computes the masked half too), and the LM head, d_embed·V, on the LAST position
    only for prefill (as `generate` does) and on every position in training.
    forward = 2·B·T·body + 2·B·P·V·d_embed + 4·B·L·d_attn·T·T_keys, with P the positions given logits.
    Training = 3 × forward: the backward of each matmul is two matmuls of the same size (grad of the
    input and of the weight). Not counted: norms, activations, softmax, rotary, biases, the embedding
    lookup, the loss and the optimizer. MoE: each token runs exactly k experts whichever kernel
    groups them (transformers' default `grouped_mm` experts are invisible to FlopCounterMode, so the
    tests build Mixtral with `experts_implementation="eager"`). Fused kernels (sdpa, flash) skip the
    masked half of the scores; `executed` still counts what eager runs, so it is an upper bound for them.

Left out everywhere: sliding-window attention (Mistral v0.1, Phi-3's `sliding_window`) is treated as
full attention — exact for eager, which masks but still computes the full score matrix.
"""

from __future__ import annotations

from typing import Callable

from llmecon.costmodel.architecture import ModelShape
from llmecon.errors import UserError, require_count
from llmecon.vocab import CONVENTIONS



def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise UserError(f"unknown FLOP convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def _forward(shape: ModelShape, convention: str, batch_size: int, queries: int, keys: float,
             head_positions: int) -> float:
    """FLOPs of one forward: `queries` new positions per sequence, each attending `keys` positions
    (the mean over the queries), LM head on `head_positions` positions per sequence."""
    B, L, d_attn = batch_size, shape.num_hidden_layers, shape.q_dim
    if convention == "article":
        return 2.0 * shape.params_active * B * queries
    if convention in ("non_embedding", "causal"):
        return B * queries * (2.0 * shape.params_non_embedding_active + 4.0 * L * d_attn * keys)
    # executed
    linear = 2.0 * B * queries * shape.body_matmul_params_active
    head = 2.0 * B * head_positions * shape.lm_head_matmul_params
    attention = 4.0 * B * L * d_attn * queries * keys
    return linear + head + attention


def prefill_flops(shape: ModelShape, batch_size: int, seq_len: int, convention: str) -> float:
    """One forward over batch_size × seq_len, no cache, logits for the last position only."""
    _check_convention(convention)
    B, T = require_count("batch_size", batch_size), require_count("seq_len", seq_len)
    keys = (T + 1) / 2 if convention == "causal" else T
    return _forward(shape, convention, B, T, keys, head_positions=1)


def decode_step_flops(shape: ModelShape, batch_size: int, context_len: int, convention: str) -> float:
    """One new token per sequence, attending to context_len positions (itself included), from a KV cache."""
    _check_convention(convention)
    B, c = require_count("batch_size", batch_size), require_count("context_len", context_len)
    return _forward(shape, convention, B, 1, c, head_positions=1)


def decode_flops(shape: ModelShape, batch_size: int, prompt_len: int, new_tokens: int, convention: str) -> float:
    """The new_tokens decode steps after a prompt of prompt_len: step k (0-based) attends
    prompt_len + k + 1 positions. Every convention is affine in the context, so the sum is
    new_tokens × the step at the mean context prompt_len + (new_tokens + 1)/2."""
    _check_convention(convention)
    B = require_count("batch_size", batch_size)
    P, n = require_count("prompt_len", prompt_len, allow_zero=True), require_count("new_tokens", new_tokens, allow_zero=True)
    if n == 0:
        return 0.0
    return n * _forward(shape, convention, B, 1, P + (n + 1) / 2, head_positions=1)


def train_step_flops(shape: ModelShape, batch_size: int, seq_len: int, convention: str) -> float:
    """Forward + backward over batch_size × seq_len, loss on every position; optimizer not counted.
    Backward = 2 × forward for every convention (article: 6N = 3 × 2N; PaLM: 6N + 12LHQT)."""
    _check_convention(convention)
    B, T = require_count("batch_size", batch_size), require_count("seq_len", seq_len)
    keys = (T + 1) / 2 if convention == "causal" else T
    return 3.0 * _forward(shape, convention, B, T, keys, head_positions=T)


def all_conventions(fn: Callable[..., float], *args, **kw) -> dict[str, float]:
    """{convention: fn(*args, convention=..., **kw)} for the four conventions, in order."""
    return {c: fn(*args, convention=c, **kw) for c in CONVENTIONS}
