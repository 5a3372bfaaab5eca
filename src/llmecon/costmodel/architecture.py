"""Decoder-only architectures read from Hugging Face configs, and their parameter counts.

A `ModelShape` holds the few numbers that set a model's cost (HF config names: `hidden_size`,
`num_key_value_heads`, ...) plus the family details that change the parameter count (biases, fused or
gated MLPs, learned position tables, tied LM head). It comes from a preset
(`costmodel/data/models.csv`), a `config.json`, a local model folder, or a dict.

Parameter counts are exact: `params_total` equals `sum(p.numel() for p in model.parameters())` for
the model transformers builds from `hf_config` (tests check every family on the meta device).
Supported `model_type`s and what each instantiates (d = hidden_size, H/K = query/KV heads,
h = head_dim, I = intermediate size, V = vocab, L = layers):

- llama, mistral, qwen2, gemma (RMSNorm, gated SiLU/GELU MLP, rotary):
  attention q d·Hh, k and v d·Kh each, o Hh·d; MLP gate/up/down 3·d·I; 2 norms of d per layer and a
  final one. Biases: qwen2 always has q/k/v biases (not o); llama and gemma have all four when
  `attention_bias`; llama has MLP biases when `mlp_bias`. gemma's default head_dim is 256.
- phi3: the same numbers with fused `qkv_proj` and `gate_up_proj`.
- mixtral: llama attention; per layer a router d·E and E experts of 3·d·I each.
- gpt2: learned positions (n_positions·d), Conv1D c_attn d·3d, c_proj d·d, MLP d·4d (or n_inner) each
  way, all with biases; LayerNorm (weight + bias); LM head tied.
- gpt_neox (Pythia): fused qkv d·3d and dense d·d (biases when `attention_bias`), MLP with biases,
  LayerNorms; rotary only (no position table); LM head untied by default. Parallel residual does not
  change the count.
- opt: learned positions with 2 extra rows (offset 2: (max_position_embeddings + 2)·d); token table
  V·p with p = word_embed_proj_dim and project_in / project_out p·d when p != d; all linears biased
  (`enable_bias`); LayerNorms; final LayerNorm only for pre-LN models; LM head p·V tied.

Definitions (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", §2.1: "N ... excluding
all vocabulary and positional embeddings"):

- `params_non_embedding` = total − token embedding − position embedding − an *untied* LM head. The
  LM head is the output embedding (Kaplan's "de-embed", which his C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn
  also leaves out); a tied head is the same matrix as the input embedding and is subtracted once.
  OPT's project_in / project_out are ordinary linears and stay in.
- `params_active` = parameters used for one token: for MoE, all but the (E − k) unselected experts'
  MLPs in every layer (router and attention included); for dense models, `params_total`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from llmecon.errors import UserError, require_count

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "mixtral", "qwen2", "gemma", "phi3", "gpt2", "gpt_neox", "opt")
_LLAMA_LIKE = ("llama", "mistral", "mixtral", "qwen2", "gemma", "phi3")

# transformers' defaults for the optional fields we read, per family (its configuration_*.py);
# tests/test_architecture.py checks them against AutoConfig.for_model(model_type).
# None for num_key_value_heads means "= num_attention_heads"; for head_dim "= hidden_size // heads".
_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"num_key_value_heads": None, "head_dim": None, "tie_word_embeddings": False,
              "attention_bias": False, "mlp_bias": False, "max_position_embeddings": 2048},
    "mistral": {"num_key_value_heads": 8, "head_dim": None, "tie_word_embeddings": False,
                "max_position_embeddings": 131072},
    "mixtral": {"num_key_value_heads": 8, "head_dim": None, "tie_word_embeddings": False,
                "num_local_experts": 8, "num_experts_per_tok": 2, "max_position_embeddings": 131072},
    "qwen2": {"num_key_value_heads": 32, "head_dim": None, "tie_word_embeddings": False,
              "max_position_embeddings": 32768},
    "gemma": {"num_key_value_heads": 16, "head_dim": 256, "tie_word_embeddings": True,
              "attention_bias": False, "max_position_embeddings": 8192},
    "phi3": {"num_key_value_heads": None, "head_dim": None, "tie_word_embeddings": False,
             "max_position_embeddings": 4096},
    "gpt2": {"n_inner": None, "tie_word_embeddings": True, "n_positions": 1024},
    "gpt_neox": {"tie_word_embeddings": False, "attention_bias": True, "max_position_embeddings": 2048},
    "opt": {"word_embed_proj_dim": None, "enable_bias": True, "do_layer_norm_before": True,
            "_remove_final_layer_norm": False, "layer_norm_elementwise_affine": True,
            "tie_word_embeddings": True, "max_position_embeddings": 2048},
}

# The size fields a config must give (HF would silently fill in a 7B-sized default otherwise).
# Each entry is a tuple of accepted names (GPT-2 uses its own names; HF maps the others onto them).
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "gpt2": (("vocab_size",), ("n_embd", "hidden_size"), ("n_layer", "num_hidden_layers"),
             ("n_head", "num_attention_heads")),
    "opt": (("vocab_size",), ("hidden_size",), ("num_hidden_layers",), ("num_attention_heads",), ("ffn_dim",)),
}
for _mt in _LLAMA_LIKE + ("gpt_neox",):
    _REQUIRED[_mt] = (("vocab_size",), ("hidden_size",), ("intermediate_size",), ("num_hidden_layers",),
                      ("num_attention_heads",))


@dataclass(frozen=True)
class ModelShape:
    """One decoder-only model's shape: what sets its parameters, FLOPs and bytes.

    Size fields keep the HF config names. The fields after `training_tokens` are the family details
    that the parameter count needs; `load_model_shape` fills them in from the config.
    """

    name: str
    model_type: str
    hf_config: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    num_experts: int = 1
    num_experts_per_tok: int = 1
    training_tokens: float | None = None
    # family details (parameter-count exactness)
    gated_mlp: bool = True              # gate/up/down (3 matrices) vs up/down (2)
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_params: int = 0                # parameters in one norm (d for RMSNorm, 2d for LayerNorm, 0)
    norms_per_layer: int = 2
    final_norm: bool = True
    position_embeddings: int = 0        # rows of a learned position table (0: rotary)
    embed_dim: int = 0                  # width of the token table and LM head (OPT's word_embed_proj_dim)
    source: str = ""
    note: str = ""

    def __post_init__(self):
        ints = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "max_position_embeddings", "num_experts",
                "num_experts_per_tok", "embed_dim")
        where = f"model {self.name!r}"
        for key in ints:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"{where}: {key} must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise UserError(f"{where}: num_attention_heads ({self.num_attention_heads}) is not a multiple of "
                            f"num_key_value_heads ({self.num_key_value_heads})")
        if self.num_experts_per_tok > self.num_experts:
            raise UserError(f"{where}: num_experts_per_tok ({self.num_experts_per_tok}) exceeds the number of "
                            f"experts ({self.num_experts})")
        tokens = self.training_tokens
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, (int, float))
                                   or not math.isfinite(tokens) or tokens <= 0):
            raise UserError(f"{where}: training_tokens must be a positive number, got {self.training_tokens!r}")

    # ---- sizes of the pieces --------------------------------------------------------------------

    @property
    def q_dim(self) -> int:
        """Width of all query heads, H·h (Kaplan's d_attn)."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the keys (and of the values): K·h."""
        return self.num_key_value_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    @property
    def attention_matmul_params(self) -> int:
        """Weights of q, k, v, o in one layer: d·(Hh + 2·Kh) + Hh·d."""
        d = self.hidden_size
        return d * (self.q_dim + 2 * self.kv_dim) + self.q_dim * d

    @property
    def expert_matmul_params(self) -> int:
        """Weights of one MLP (one expert for MoE): 3·d·I gated, 2·d·I otherwise."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * self.intermediate_size

    @property
    def router_params(self) -> int:
        """MoE router d·E (no bias); 0 for dense."""
        return self.hidden_size * self.num_experts if self.is_moe else 0

    @property
    def projection_params(self) -> int:
        """OPT's project_in and project_out (p·d each) when word_embed_proj_dim != hidden_size."""
        return 2 * self.embed_dim * self.hidden_size if self.embed_dim != self.hidden_size else 0

    @property
    def lm_head_matmul_params(self) -> int:
        """The LM head's weights, V·embed_dim, tied or not (it runs either way)."""
        return self.vocab_size * self.embed_dim

    @property
    def body_matmul_params_active(self) -> int:
        """Weights of every matmul one token goes through below the LM head, counting only the
        k experts it is routed to: L·(attention + k·expert + router) + projections. `flops` uses it."""
        per_layer = self.attention_matmul_params + self.num_experts_per_tok * self.expert_matmul_params
        return self.num_hidden_layers * (per_layer + self.router_params) + self.projection_params

    def param_breakdown(self) -> dict[str, int]:
        """Parameters by component; the values sum to `params_total`."""
        d, L = self.hidden_size, self.num_hidden_layers
        bias_attn = (self.q_dim + 2 * self.kv_dim if self.qkv_bias else 0) + (d if self.o_bias else 0)
        # MLP biases: gate + up (I each) + down (d) when gated; up (I) + down (d) otherwise.
        mlp_bias = (self.intermediate_size * (2 if self.gated_mlp else 1) + d) if self.mlp_bias else 0
        experts = self.num_experts * (self.expert_matmul_params + mlp_bias)
        return {
            "token_embedding": self.vocab_size * self.embed_dim,
            "position_embedding": self.position_embeddings * d,
            "attention": L * (self.attention_matmul_params + bias_attn),
            "mlp": L * experts,
            "router": L * self.router_params,
            "norms": (L * self.norms_per_layer + (1 if self.final_norm else 0)) * self.norm_params,
            "projections": self.projection_params,
            "lm_head": 0 if self.tie_word_embeddings else self.lm_head_matmul_params,
        }

    @property
    def params_total(self) -> int:
        """Every parameter transformers instantiates (a tied LM head counted once)."""
        return sum(self.param_breakdown().values())

    @property
    def params_embedding(self) -> int:
        """Token and position tables plus an untied LM head (see the module docstring)."""
        b = self.param_breakdown()
        return b["token_embedding"] + b["position_embedding"] + b["lm_head"]

    @property
    def params_non_embedding(self) -> int:
        """Kaplan's N: total minus token/position embeddings and an untied LM head."""
        return self.params_total - self.params_embedding

    @property
    def params_inactive(self) -> int:
        """Parameters of the experts a token is not routed to: L·(E − k)·expert."""
        per_expert = self.param_breakdown()["mlp"] // (self.num_hidden_layers * self.num_experts)
        return self.num_hidden_layers * (self.num_experts - self.num_experts_per_tok) * per_expert

    @property
    def params_active(self) -> int:
        """Parameters one token uses: all but the unselected experts (== total for dense models)."""
        return self.params_total - self.params_inactive

    @property
    def params_non_embedding_active(self) -> int:
        return self.params_non_embedding - self.params_inactive

    def with_layers(self, layers: int) -> "ModelShape":
        """The first ``layers`` decoder layers of this model at full width, hf_config included (every
        per-layer list in it, such as ``layer_types``, cut too): what ``bench --layers K`` builds of a model
        too large to hold. More layers than the model has is refused, never grown."""
        layers = require_count("--layers", layers)
        if layers > self.num_hidden_layers:
            raise UserError(f"--layers {layers} is more than {self.name}'s {self.num_hidden_layers} layers")
        if layers == self.num_hidden_layers:
            return self
        full = self.num_hidden_layers
        cfg = dict(self.hf_config)
        for key, value in list(cfg.items()):
            if isinstance(value, list) and len(value) == full:
                cfg[key] = value[:layers]
        key = "n_layer" if self.model_type == "gpt2" and "n_layer" in cfg else "num_hidden_layers"
        cfg[key] = layers
        return replace(self, num_hidden_layers=layers, hf_config=cfg)

    def summary(self) -> dict[str, Any]:
        """Plain-dict view (for JSON output and records)."""
        return {
            "name": self.name, "model_type": self.model_type, "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads, "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings, "num_experts": self.num_experts,
            "num_experts_per_tok": self.num_experts_per_tok, "training_tokens": self.training_tokens,
            "params_total": self.params_total, "params_non_embedding": self.params_non_embedding,
            "params_active": self.params_active, "param_breakdown": self.param_breakdown(),
            "source": self.source, "note": self.note,
        }


# ---- reading configs ----------------------------------------------------------------------------


def _int_field(cfg: Mapping[str, Any], key: str, where: str) -> int:
    value = cfg[key]
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not value.is_integer())):  # NaN and inf are not integers
        raise UserError(f"{where}: {key} must be an integer, got {value!r}")
    if value <= 0:
        raise UserError(f"{where}: {key} must be positive, got {value!r}")
    return int(value)


def _bool_field(cfg: Mapping[str, Any], key: str, where: str) -> bool:
    value = cfg[key]
    if not isinstance(value, bool):
        raise UserError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def shape_from_config(cfg: Mapping[str, Any], *, name: str, training_tokens: float | None = None,
                      source: str = "", note: str = "") -> ModelShape:
    """Build a ModelShape from an HF config dict; UserError for anything unsupported or malformed."""
    where = f"model {name!r}"
    if not isinstance(cfg, Mapping):
        raise UserError(f"{where}: config must be a JSON object, got {type(cfg).__name__}")
    model_type = cfg.get("model_type")
    if model_type is None:
        raise UserError(f"{where}: config has no model_type; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UserError(f"{where}: model_type {model_type!r} is not supported; supported: "
                        f"{', '.join(SUPPORTED_MODEL_TYPES)}")
    for names in _REQUIRED[model_type]:
        if not any(cfg.get(n) is not None for n in names):
            raise UserError(f"{where}: config lacks {names[0]} (needed for model_type {model_type})")
    full = {**_DEFAULTS[model_type], **cfg}
    # Null in a config means "use the default" for these optional fields (HF does the same).
    for key, default in _DEFAULTS[model_type].items():
        if full.get(key) is None:
            full[key] = default

    def get_int(*names: str) -> int:
        for n in names:
            if full.get(n) is not None:
                return _int_field(full, n, where)
        raise AssertionError(names)  # _REQUIRED / _DEFAULTS guarantee one is present

    vocab = get_int("vocab_size")
    if model_type == "gpt2":
        d, L, H = get_int("n_embd", "hidden_size"), get_int("n_layer", "num_hidden_layers"), get_int("n_head", "num_attention_heads")
        positions = get_int("n_positions", "max_position_embeddings")
        inner = _int_field(full, "n_inner", where) if full["n_inner"] is not None else 4 * d
        kw = dict(intermediate_size=inner, num_key_value_heads=H, max_position_embeddings=positions,
                  gated_mlp=False, qkv_bias=True, o_bias=True, mlp_bias=True, norm_params=2 * d,
                  position_embeddings=positions, embed_dim=d,
                  tie_word_embeddings=_bool_field(full, "tie_word_embeddings", where))
    else:
        d, L, H = get_int("hidden_size"), get_int("num_hidden_layers"), get_int("num_attention_heads")
        positions = get_int("max_position_embeddings")
        kw = dict(max_position_embeddings=positions,
                  tie_word_embeddings=_bool_field(full, "tie_word_embeddings", where))
        if model_type in _LLAMA_LIKE:
            kv = get_int("num_key_value_heads") if full["num_key_value_heads"] is not None else H
            explicit_head_dim = full.get("head_dim")
            kw.update(intermediate_size=get_int("intermediate_size"), num_key_value_heads=kv,
                      norm_params=d, embed_dim=d, gated_mlp=True)
            if explicit_head_dim is not None:
                kw["head_dim"] = _int_field(full, "head_dim", where)
            if model_type == "qwen2":
                kw.update(qkv_bias=True)
            if model_type in ("llama", "gemma") and _bool_field(full, "attention_bias", where):
                kw.update(qkv_bias=True, o_bias=True)
            if model_type == "llama":
                kw.update(mlp_bias=_bool_field(full, "mlp_bias", where))
            if model_type == "mixtral":  # HF maps num_experts onto num_local_experts
                kw.update(num_experts=get_int("num_experts", "num_local_experts"),
                          num_experts_per_tok=get_int("num_experts_per_tok"))
        elif model_type == "gpt_neox":
            attn_bias = _bool_field(full, "attention_bias", where)
            kw.update(intermediate_size=get_int("intermediate_size"), num_key_value_heads=H, gated_mlp=False,
                      qkv_bias=attn_bias, o_bias=attn_bias, mlp_bias=True, norm_params=2 * d, embed_dim=d)
        elif model_type == "opt":
            proj = get_int("word_embed_proj_dim") if full["word_embed_proj_dim"] is not None else d
            pre_ln = _bool_field(full, "do_layer_norm_before", where)
            affine = _bool_field(full, "layer_norm_elementwise_affine", where)
            bias = _bool_field(full, "enable_bias", where)
            kw.update(intermediate_size=get_int("ffn_dim"), num_key_value_heads=H, gated_mlp=False,
                      qkv_bias=bias, o_bias=bias, mlp_bias=bias, norm_params=2 * d if affine else 0,
                      final_norm=pre_ln and not _bool_field(full, "_remove_final_layer_norm", where),
                      position_embeddings=positions + 2, embed_dim=proj)
    if "head_dim" not in kw:
        if d % H:
            raise UserError(f"{where}: hidden_size ({d}) is not divisible by num_attention_heads ({H})")
        kw["head_dim"] = d // H
    if training_tokens is None and cfg.get("training_tokens") is not None:
        training_tokens = cfg["training_tokens"]
    hf_config = {k: v for k, v in cfg.items() if k != "training_tokens"}
    return ModelShape(name=name, model_type=model_type, hf_config=hf_config, vocab_size=vocab, hidden_size=d,
                      num_hidden_layers=L, num_attention_heads=H, training_tokens=training_tokens,
                      source=source, note=note, **kw)
