"""Device memory one benchmarked configuration needs at its peak: weights, gradients, optimizer state, KV
cache, activations and logits, in bytes, for the workloads `llmecon bench` runs (measure/workloads.py).

Notation: T = b·s tokens in the step, d = hidden_size, I = intermediate_size (k·I for a MoE that routes each
token to k experts), q = H·h and kv = K·h the query and key/value widths (K < H under GQA), V = vocab_size,
L = layers, N = parameters. c is the bytes of an element in the compute dtype and r in the residual stream:
the model's dtype in inference; fp32 in training, whose master weights and embedding output are fp32 and
whose residual additions are not autocast (an fp32 stream plus a bf16 branch stays fp32).

**Training** (fp32 master weights, torch.optim.AdamW, bf16/fp16 autocast, loss on every position):

- weights 4N; gradients 4N; AdamW state 8N (exp_avg and exp_avg_sq in fp32, as torch.optim.AdamW keeps
  them); under autocast, the c-byte copies of every matmul weight, which autocast casts once per forward
  and each linear saves for its backward (`autocast_copy_bytes`).
- activations: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
  (arXiv:2205.05198), §4.1, count what a transformer layer stores for its backward: sbh(34 + 5as/h) bytes,
  16-bit, with dropout. `layer_activation_bytes` redoes that count for what Hugging Face's pre-norm decoder
  keeps with the sdpa attention (read off modeling_llama.py, checked tensor by tensor with
  torch.autograd.graph.saved_tensors_hooks, and against measured peaks, docs/memory.md): no dropout masks
  (these configs have none); no a·s² scores (a fused sdpa kernel keeps q, k, v, its output and an fp32
  log-sum-exp per query and head); k and v at the K key/value heads; per norm its r-byte input and, for
  RMSNorm, the normalised tensor its weight multiplies; the norm's output as the matmuls read it (under
  autocast one c-byte cast per matmul: 3 for separate q/k/v, 2 for separate gate/up); the MLP's hidden
  tensors of width I, four gated (gate, act(gate), up, their product), two otherwise (fc1, act(fc1)).
  Eager attention keeps the H·s² scores instead (fp32 softmax output, plus its c-byte cast below fp32) and
  k, v repeated to the H query heads. With activation checkpointing, each layer keeps its r-byte input and
  one layer's activations are recomputed at a time.
- logits: HF's causal-LM loss upcasts the b·s·V logits to fp32, and cross_entropy keeps the fp32
  log_softmax output; its backward holds that output, the gradient it receives and the gradient it returns
  at once: 12·T·V bytes, while every layer's activations are still stored (`train_logits_bytes`).
- peak: weights and optimizer state stay. The backward turns activations (its input) into gradients (its
  output) layer by layer, so the two are never all alive together (the sum over the layers still to go
  and the layers done is largest at an end): the peak is the larger of the backward's start (autocast
  copies + activations + logits) and the optimizer step (gradients + the step's scratch: none for the fused
  CUDA AdamW; on CPU, where AdamW runs tensor by tensor, sqrt(v) and its quotient for the largest tensor).

**Inference** (the model in its dtype, inference_mode): weights c·N; KV cache 2·L·kv·c per position and
sequence (`memory.kv_cache_bytes_per_token`); activations: the most one layer holds at once (no tensor
outlives its layer; `inference_transient_bytes`), and the last position's logits, b·V·c.

- prefill (use_cache=False): weights + one layer's transient over T tokens + logits.
- decode: a cache of seq_len + new_tokens positions. The larger of the prompt's prefill (the cache filled
  up to the last layer, that layer's transient on top) and a step at the last position (a DynamicCache grows
  by torch.cat, so one layer's keys (or values) briefly exist twice; a StaticCache is allocated whole).

Not counted: the allocator's fragmentation, the CUDA context, cuBLAS and attention-kernel workspaces, and
torch.compile's own buffers; `HEADROOM_FRACTION` of the device's memory is kept free for them.
"""

from __future__ import annotations

from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.memory import BYTES_PER_ELEMENT, kv_cache_bytes_per_token, weight_bytes
from llmecon.errors import UserError, require_count
from llmecon.vocab import PHASES

# Share of the device's memory assumed unavailable to the tensors counted here: the CUDA context (a few
# hundred MiB), cuBLAS and attention-kernel workspaces, and above all the caching allocator's fragmentation,
# the gap between memory reserved and memory allocated, which grows when tensors of changing sizes come and
# go (a growing KV cache, per-layer activations). An assumption, not a measurement: on a GPU every bench
# record keeps both peaks (memory.peak_bytes and peak_reserved_bytes), the numbers to check it against.
HEADROOM_FRACTION = 0.10

FP32_BYTES = 4
PARTS = ("weights", "autocast_copies", "gradients", "optimizer", "kv_cache", "activations", "logits")
_FUSED_QKV = ("phi3", "gpt2", "gpt_neox")   # one matmul reads the attention norm's output
_FUSED_GATE_UP = ("phi3",)                   # one matmul reads the MLP norm's output (gated)
_RMSNORM = ("llama", "mistral", "mixtral", "qwen2", "gemma", "phi3")


def _bpe(dtype: str) -> int:
    try:
        return BYTES_PER_ELEMENT[dtype]
    except KeyError:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(BYTES_PER_ELEMENT)}") from None


def usable_bytes(device_memory_bytes: float) -> float:
    """The memory a configuration may plan to use: the device's, less HEADROOM_FRACTION."""
    return float(device_memory_bytes) * (1.0 - HEADROOM_FRACTION)


def _mlp_width(shape: ModelShape) -> int:
    """Hidden width of the MLP one token goes through: k·I (the k experts it is routed to)."""
    return shape.num_experts_per_tok * shape.intermediate_size


def layer_activation_bytes(shape: ModelShape, tokens: int, *, compute_bytes: int, residual_bytes: int,
                           seq_len: int, eager: bool = False) -> float:
    """Bytes one decoder layer stores for its backward (Korthikanti et al. 2022 §4.1, redone for HF's
    decoder; module docstring). Per token: 2·d·r (the layer's input and the sum after attention), 2·d·r more
    for RMSNorm's normalised tensors, the norms' outputs as the matmuls read them (autocast: n·d·c for n
    matmuls; else 2·d·r), c·(2·q + 2·kv) (rotary q, k, v, the attention output), 4·H (fp32 log-sum-exp) and
    c·I·4 gated (2 otherwise). Eager: k and v at q width, plus H·s·(4 + c) (4 in fp32) of scores."""
    c, r, d = compute_bytes, residual_bytes, shape.hidden_size
    per_token = 2 * d * r + (2 * d * r if shape.model_type in _RMSNORM else 0)
    if c != r:  # autocast casts the norm's output once per matmul that reads it
        n_attn = 1 if shape.model_type in _FUSED_QKV else 3
        n_mlp = 1 if (shape.model_type in _FUSED_GATE_UP or not shape.gated_mlp) else 2
        per_token += (n_attn + n_mlp) * d * c
    else:
        per_token += 2 * d * r
    kv = shape.q_dim if eager else shape.kv_dim  # eager's repeat_kv copies k and v to every query head
    per_token += c * (2 * shape.q_dim + 2 * kv) + FP32_BYTES * shape.num_attention_heads
    per_token += c * (4 if shape.gated_mlp else 2) * _mlp_width(shape)
    if eager:
        per_token += shape.num_attention_heads * seq_len * (FP32_BYTES + (c if c != FP32_BYTES else 0))
    return float(tokens * per_token)


def train_logits_bytes(shape: ModelShape, tokens: int) -> float:
    """The loss's peak over the b·s·V logits: the fp32 log_softmax output, its gradient and the gradient it
    returns, 12·T·V bytes (module docstring)."""
    return float(3 * FP32_BYTES * tokens * shape.vocab_size)


def autocast_copy_bytes(shape: ModelShape, compute_bytes: int) -> float:
    """Autocast's c-byte copies of every matmul weight: all parameters but the token and position tables and
    the norms (a tied LM head is the token table, cast for the head: counted once here)."""
    b = shape.param_breakdown()
    matmul = shape.params_total - b["token_embedding"] - b["position_embedding"] - b["norms"]
    if shape.tie_word_embeddings:
        matmul += shape.lm_head_matmul_params
    return float(compute_bytes * matmul)


def inference_transient_bytes(shape: ModelShape, tokens: int, *, compute_bytes: int, seq_len: int,
                              eager: bool = False) -> float:
    """The most one decoder layer holds at once in inference, T tokens, c bytes an element. Alive throughout:
    the embedding output (the model's forward keeps it), the layer's input and a norm's output, 3·d·c. On
    top, the largest of: the MLP (the sum after attention, then gated act(gate), up and their product:
    d + 3·I; otherwise fc1 and act(fc1): d + 2·I), the attention (rotary q with its two partial products and
    the result, k and v: 4·q + 2·kv; eager adds k and v repeated to the H heads, 2·q, and for each of the
    H·s scores per token the masked scores, their fp32 upcast below fp32 and the fp32 softmax) and,
    below fp32, RMSNorm's fp32 upcast and square (2·d·4 bytes)."""
    c, d = compute_bytes, shape.hidden_size
    mlp = (d + (3 if shape.gated_mlp else 2) * _mlp_width(shape)) * c
    attn = (4 * shape.q_dim + 2 * shape.kv_dim) * c
    if eager:  # k and v repeated to the query heads; the scores with their fp32 softmax
        upcast = FP32_BYTES if c < FP32_BYTES else 0
        attn += 2 * shape.q_dim * c + shape.num_attention_heads * seq_len * (c + FP32_BYTES + upcast)
    norm = 2 * d * FP32_BYTES if (shape.model_type in _RMSNORM and c < FP32_BYTES) else 0
    return float(tokens * (3 * d * c + max(mlp, attn, norm)))


def last_position_head_bytes(shape: ModelShape, batch_size: int, seq_len: int, *, compute_bytes: int,
                             device_kind: str) -> float:
    """The LM head over the last position (logits_to_keep=1), logits aside: the final norm's output, T·d·c
    (the base model has returned, its other tensors are gone); on a CPU below fp32, when s > 1, also b·d·V·c.
    (The b×1×d slice of a longer sequence cannot fold into one matmul, so torch.matmul broadcasts the head's
    weight to a batched matmul, and the CPU's bf16 bmm copies the broadcast weight: measured, docs/memory.md.
    On CUDA the strided-batched GEMM reads a broadcast operand in place; not counted there.)"""
    c, d = compute_bytes, shape.hidden_size
    out = float(batch_size * seq_len * d * c)
    if device_kind == "cpu" and c < FP32_BYTES and seq_len > 1:
        out += batch_size * d * shape.vocab_size * c
    return out


def footprint(shape: ModelShape, phase: str, *, batch_size: int, seq_len: int, dtype: str, new_tokens: int = 0,
              device_kind: str = "cuda", attn_implementation: str = "sdpa", static_cache: bool = False,
              activation_checkpointing: bool = False) -> dict:
    """Predicted peak memory of one configuration: {"parts_bytes": {part: bytes} (PARTS, each part at its own
    largest), "total_bytes": the peak (below the parts' sum in training: module docstring), "peak_at": the
    moment that sets it}. ``device_kind`` "cuda" or "cpu" (the optimizer and one CPU kernel differ)."""
    if phase not in PHASES:
        raise UserError(f"unknown phase {phase!r}; choose from {', '.join(PHASES)}")
    b, s = require_count("batch_size", batch_size), require_count("seq_len", seq_len)
    c, eager = _bpe(dtype), attn_implementation == "eager"
    parts = dict.fromkeys(PARTS, 0.0)
    if phase == "train":
        return _train(shape, parts, b, s, c, device_kind, eager, activation_checkpointing)
    parts["weights"] = weight_bytes(shape, dtype)
    parts["logits"] = float(b * shape.vocab_size * c)
    prompt = max(inference_transient_bytes(shape, b * s, compute_bytes=c, seq_len=s, eager=eager),
                 last_position_head_bytes(shape, b, s, compute_bytes=c, device_kind=device_kind))
    if phase == "prefill":
        parts["activations"] = prompt
        return {"parts_bytes": parts, "total_bytes": sum(parts.values()), "peak_at": "prefill: the forward"}
    n = require_count("new_tokens", new_tokens)
    per_position = b * kv_cache_bytes_per_token(shape, dtype)
    parts["kv_cache"] = (s + n) * per_position
    fill = (s + n if static_cache else s) * per_position + prompt
    # a DynamicCache step concatenates each layer's keys, then its values: one of them exists twice at a time
    growth = 0.0 if static_cache else parts["kv_cache"] / (2 * shape.num_hidden_layers)
    step = parts["kv_cache"] + growth + inference_transient_bytes(shape, b, compute_bytes=c, seq_len=s + n,
                                                                  eager=eager)
    parts["activations"] = max(prompt, step - parts["kv_cache"])
    at = "decode: the prompt's prefill" if fill >= step else "decode: a step at the last position"
    return {"parts_bytes": parts, "total_bytes": parts["weights"] + parts["logits"] + max(fill, step), "peak_at": at}


def _train(shape: ModelShape, parts: dict, b: int, s: int, c: int, device_kind: str, eager: bool,
           checkpointing: bool) -> dict:
    N, T, r, d = shape.params_total, b * s, FP32_BYTES, shape.hidden_size
    parts["weights"] = parts["gradients"] = float(FP32_BYTES * N)
    parts["optimizer"] = float(2 * FP32_BYTES * N)
    if c != FP32_BYTES:
        parts["autocast_copies"] = autocast_copy_bytes(shape, c)
    layer = layer_activation_bytes(shape, T, compute_bytes=c, residual_bytes=r, seq_len=s, eager=eager)
    top = T * d * (2 * r + c)  # the final norm's input and normalised tensor, the LM head's input
    parts["logits"] = train_logits_bytes(shape, T)
    if checkpointing:  # each layer's input is kept; a layer is recomputed after the loss's gradient has left
        kept = shape.num_hidden_layers * T * d * r + top
        parts["activations"] = kept + layer
        backward = kept + max(parts["logits"], layer)
    else:
        parts["activations"] = shape.num_hidden_layers * layer + top
        backward = parts["activations"] + parts["logits"]
    backward += parts["autocast_copies"]  # freed layer by layer in the backward: gone by the optimizer step
    # CPU AdamW goes tensor by tensor: sqrt(v) and sqrt(v)/bias_correction for the largest tensor
    largest = max(shape.vocab_size * shape.embed_dim, d * shape.intermediate_size)
    step = parts["gradients"] + (0.0 if device_kind == "cuda" else 2.0 * FP32_BYTES * largest)
    at = "train: the backward pass begins" if backward >= step else "train: the optimizer step"
    return {"parts_bytes": parts, "total_bytes": parts["weights"] + parts["optimizer"] + max(backward, step),
            "peak_at": at}
