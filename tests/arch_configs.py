"""Tiny HF configs, one or more per supported family, for the parameter and FLOP tests (ARCH).

Each is small enough to build for real on a CPU in milliseconds. Token ids are set inside the tiny
vocabularies so transformers does not warn.
"""

_IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
_LLAMA = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, **_IDS)

TINY_CONFIGS = {
    # Llama: GQA, untied; biases; explicit head_dim != hidden / heads; tied
    "llama_gqa": dict(model_type="llama", **_LLAMA),
    "llama_bias": dict(model_type="llama", **{**_LLAMA, "attention_bias": True, "mlp_bias": True}),
    "llama_head_dim": dict(model_type="llama", **{**_LLAMA, "head_dim": 24}),
    "llama_tied_mha": dict(model_type="llama", **{**_LLAMA, "num_key_value_heads": 4, "tie_word_embeddings": True}),
    "mistral_head_dim": dict(model_type="mistral", **{**_LLAMA, "head_dim": 32}),
    "mixtral": dict(model_type="mixtral", **_LLAMA, num_local_experts=4, num_experts_per_tok=2),
    # Qwen2: q/k/v biases; tied and untied
    "qwen2_tied": dict(model_type="qwen2", **{**_LLAMA, "tie_word_embeddings": True}),
    "qwen2_untied": dict(model_type="qwen2", **{**_LLAMA, "tie_word_embeddings": False}),
    # Gemma: multi-query, explicit head_dim, tied by default; and with attention biases
    "gemma": dict(model_type="gemma", **{**_LLAMA, "num_key_value_heads": 1, "head_dim": 32}),
    "gemma_bias": dict(model_type="gemma", **{**_LLAMA, "head_dim": 16, "attention_bias": True}),
    # Phi-3: fused qkv and gate_up
    "phi3": dict(model_type="phi3", **_LLAMA),
    # GPT-2: Conv1D, learned positions, tied; n_inner; untied
    "gpt2": dict(model_type="gpt2", vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                 bos_token_id=1, eos_token_id=2),
    "gpt2_inner_untied": dict(model_type="gpt2", vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=96,
                              n_inner=80, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
    # GPT-NeoX / Pythia: parallel residual, partial rotary, untied; no attention bias and tied
    "gpt_neox": dict(model_type="gpt_neox", vocab_size=256, hidden_size=64, intermediate_size=96,
                     num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128, rotary_pct=0.25,
                     use_parallel_residual=True, bos_token_id=1, eos_token_id=2),
    "gpt_neox_nobias_tied": dict(model_type="gpt_neox", vocab_size=256, hidden_size=64, intermediate_size=96,
                                 num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128,
                                 attention_bias=False, tie_word_embeddings=True, use_parallel_residual=False,
                                 bos_token_id=1, eos_token_id=2),
    # OPT: learned positions with offset 2, word_embed_proj_dim != hidden (project_in/out), tied;
    # post-LN (no final norm) like opt-350m; no biases and no affine norms
    "opt_proj": dict(model_type="opt", vocab_size=256, hidden_size=64, ffn_dim=96, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=128, word_embed_proj_dim=32, **_IDS),
    "opt_post_ln": dict(model_type="opt", vocab_size=256, hidden_size=64, ffn_dim=96, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=128, do_layer_norm_before=False, **_IDS),
    "opt_nobias": dict(model_type="opt", vocab_size=256, hidden_size=64, ffn_dim=96, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=128, enable_bias=False,
                       layer_norm_elementwise_affine=False, **_IDS),
    # Only the required fields: the rest are transformers' defaults (mistral: 8 KV heads; gemma: head_dim 256)
    "mistral_minimal": dict(model_type="mistral", vocab_size=256, hidden_size=64, intermediate_size=96,
                            num_hidden_layers=1, num_attention_heads=8),
    "gemma_minimal": dict(model_type="gemma", vocab_size=256, hidden_size=64, intermediate_size=96,
                          num_hidden_layers=1, num_attention_heads=16, **_IDS),
    "llama_minimal": dict(model_type="llama", vocab_size=256, hidden_size=64, intermediate_size=96,
                          num_hidden_layers=1, num_attention_heads=4),
}

# One config per family for the FLOP-counter cross-check.
FLOP_CHECK = ("llama_gqa", "mistral_head_dim", "mixtral", "qwen2_tied", "gemma", "phi3", "gpt2",
              "gpt_neox", "opt_proj")


def build(cfg, *, device=None):
    """Build the transformers model for an HF config dict (eager attention and experts), in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    conf = AutoConfig.for_model(**cfg)
    kwargs = {"attn_implementation": "eager"}
    if cfg["model_type"] == "mixtral":
        kwargs["experts_implementation"] = "eager"  # the default grouped_mm is invisible to FlopCounterMode
    if device == "meta":
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(conf, **kwargs)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(conf, **kwargs).eval()


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
