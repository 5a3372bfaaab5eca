"""ModelShape: parameter counts equal what transformers instantiates, for every family and preset.

Real-size presets are built on the meta device (no storage, so a 540B model costs ~0.5 s).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmecon.costmodel.architecture import SUPPORTED_MODEL_TYPES, _DEFAULTS
from llmecon.costmodel.presets import list_presets, load_model_shape
from llmecon.errors import UserError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
TINY_CONFIGS = json.loads((Path(__file__).parents[1] / "data" / "tiny_configs.json").read_text())["configs"]


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- parity with transformers -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
@pytest.mark.slow
def test_arch_params_total_matches_transformers_small_variants(name, build_hf):
    cfg = TINY_CONFIGS[name]
    shape = load_model_shape(cfg)
    assert shape.params_total == count_params(build_hf(cfg, device="meta"))


@pytest.mark.parametrize("name", list_presets())
@pytest.mark.slow
def test_arch_params_total_matches_transformers_presets(name, build_hf):
    shape = load_model_shape(name)
    model = build_hf(dict(shape.hf_config), device="meta")
    assert shape.params_total == count_params(model)


def test_arch_every_family_is_covered_by_parity_tests():
    tested = {c["model_type"] for c in TINY_CONFIGS.values()}
    tested |= {load_model_shape(n).model_type for n in list_presets()}
    assert tested == set(SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("model_type", SUPPORTED_MODEL_TYPES)
def test_arch_assumed_defaults_are_transformers_defaults(model_type):
    hf = transformers.AutoConfig.for_model(model_type)
    for key, value in _DEFAULTS[model_type].items():
        if value is not None:
            assert getattr(hf, key) == value, key


@pytest.mark.slow
def test_arch_breakdown_names_transformers_modules(build_hf):
    """Embedding / LM head / MLP parts line up with the named parameters (not only the total)."""
    cfg = TINY_CONFIGS["opt_proj"]
    shape = load_model_shape(cfg)
    named = dict(build_hf(cfg, device="meta").named_parameters())
    b = shape.param_breakdown()
    assert b["token_embedding"] == named["model.decoder.embed_tokens.weight"].numel()
    assert b["position_embedding"] == named["model.decoder.embed_positions.weight"].numel() == (128 + 2) * 64
    assert b["projections"] == (named["model.decoder.project_in.weight"].numel()
                                + named["model.decoder.project_out.weight"].numel())
    assert b["lm_head"] == 0  # tied


# ---- definitions ------------------------------------------------------------------------------


def test_arch_non_embedding_excludes_tables_and_untied_head():
    tied = load_model_shape(TINY_CONFIGS["qwen2_tied"])
    untied = load_model_shape(TINY_CONFIGS["qwen2_untied"])
    V, d = 256, 64
    assert untied.params_total - tied.params_total == V * d
    assert tied.params_non_embedding == untied.params_non_embedding == tied.params_total - V * d
    gpt2 = load_model_shape("gpt2")   # tied, with a learned position table
    assert gpt2.params_non_embedding == gpt2.params_total - 50257 * 768 - 1024 * 768 == 85_056_000


def test_arch_active_params_mixtral():
    m = load_model_shape("mixtral-8x7b")
    assert m.num_experts == 8 and m.num_experts_per_tok == 2
    expert = 3 * 4096 * 14336
    assert m.params_total - m.params_active == 32 * 6 * expert
    assert m.params_active == 12_879_925_248          # Mistral AI: "12.9B active parameters"
    assert m.params_total == 46_702_792_704            # Mixtral paper: 47B
    dense = load_model_shape("llama-3-8b")
    assert dense.params_active == dense.params_total


@pytest.mark.parametrize("name, published", [
    ("gpt3-175b", 175e9), ("gopher-280b", 280e9), ("mt-nlg-530b", 530e9), ("palm-540b", 540e9),
    ("chinchilla-70b", 70e9), ("gpt2", 124e6), ("gpt2-xl", 1.56e9), ("llama-2-7b", 6.74e9), ("llama-2-70b", 69e9),
    ("llama-3-8b", 8.03e9), ("llama-3-405b", 405e9), ("llama-3.2-1b", 1.24e9), ("mistral-7b", 7.25e9), ("qwen2.5-0.5b", 0.494e9),
    ("qwen2.5-7b", 7.62e9), ("gemma-2b", 2.51e9), ("phi-3-mini", 3.82e9), ("pythia-1b", 1.01e9),
    ("opt-1.3b", 1.3e9),
])
def test_arch_presets_match_published_sizes(name, published):
    assert load_model_shape(name).params_total == pytest.approx(published, rel=0.015)


def test_arch_article_presets_have_training_tokens():
    tokens = {n: load_model_shape(n).training_tokens for n in
              ("gpt3-175b", "gopher-280b", "mt-nlg-530b", "palm-540b", "chinchilla-70b")}
    assert tokens == {"gpt3-175b": 300e9, "gopher-280b": 300e9, "mt-nlg-530b": 270e9, "palm-540b": 780e9,
                      "chinchilla-70b": 1.4e12}
    for n in list_presets():
        assert load_model_shape(n).source, n


@pytest.mark.slow
def test_arch_tiny_runs_forward_backward_fast_on_cpu(build_hf):
    import time

    shape = load_model_shape("tiny")
    model = build_hf(dict(shape.hf_config))
    model.train()
    ids = torch.randint(0, shape.vocab_size, (2, 64))
    t0 = time.perf_counter()
    model(input_ids=ids, labels=ids).loss.backward()
    assert time.perf_counter() - t0 < 1.0
    assert count_params(model) == shape.params_total


def test_arch_preset_hf_config_is_a_transformers_config():
    """A preset's hf_config is what transformers builds the model from (the parity tests rely on it)."""
    conf = transformers.AutoConfig.for_model(**load_model_shape("llama-3.2-1b").hf_config)
    assert (conf.model_type, conf.num_hidden_layers, conf.hidden_size) == ("llama", 16, 2048)


# ---- loading and bad input --------------------------------------------------------------------


def _bad(cfg, **change):
    out = {**cfg, **change}
    return {k: v for k, v in out.items() if v is not ...}


@pytest.mark.parametrize("cfg, message", [
    (_bad(TINY_CONFIGS["llama_gqa"], model_type="bert"), "not supported; supported: llama"),
    (_bad(TINY_CONFIGS["llama_gqa"], model_type=...), "no model_type"),
    (_bad(TINY_CONFIGS["llama_gqa"], hidden_size=...), "lacks hidden_size"),
    (_bad(TINY_CONFIGS["gpt2"], n_embd=..., ), "lacks n_embd"),
    (_bad(TINY_CONFIGS["llama_gqa"], hidden_size=-64), "hidden_size must be positive"),
    (_bad(TINY_CONFIGS["llama_gqa"], num_hidden_layers=2.5), "num_hidden_layers must be an integer"),
    (_bad(TINY_CONFIGS["llama_gqa"], num_attention_heads=5, num_key_value_heads=5), "not divisible"),
    (_bad(TINY_CONFIGS["gpt2"], n_head=5), "not divisible"),
    (_bad(TINY_CONFIGS["llama_gqa"], num_key_value_heads=3), "not a multiple"),
    (_bad(TINY_CONFIGS["mixtral"], num_experts_per_tok=5), "exceeds"),
    (_bad(TINY_CONFIGS["llama_gqa"], tie_word_embeddings="yes"), "true or false"),
    (_bad(TINY_CONFIGS["llama_gqa"], vocab_size="big"), "vocab_size must be an integer"),
    (_bad(TINY_CONFIGS["llama_gqa"], vocab_size=float("nan")), "vocab_size must be an integer, got nan"),
    (_bad(TINY_CONFIGS["llama_gqa"], hidden_size=float("inf")), "hidden_size must be an integer, got inf"),
])
def test_arch_malformed_configs_are_user_errors(cfg, message):
    with pytest.raises(UserError, match=message):
        load_model_shape(cfg)


@pytest.mark.slow
def test_arch_costmodel_imports_neither_torch_nor_transformers():
    code = ("import sys, llmecon.costmodel.presets, llmecon.costmodel.flops, llmecon.costmodel.memory; "
            "llmecon.costmodel.presets.load_model_shape('mixtral-8x7b'); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["gpt2-xl", "llama-3-70b", "mixtral-8x7b", "opt-1.3b"])
@pytest.mark.slow
def test_arch_with_layers_matches_transformers(name, build_hf):
    full = load_model_shape(name)
    cut = full.with_layers(2)
    assert cut.num_hidden_layers == 2 and full.num_hidden_layers > 2
    assert cut.params_total == count_params(build_hf(dict(cut.hf_config), device="meta"))
    per_layer = (full.params_total - cut.params_total) / (full.num_hidden_layers - 2)
    assert cut.params_total + per_layer * (full.num_hidden_layers - 2) == full.params_total
    with pytest.raises(UserError, match="--layers must be > 0"):
        full.with_layers(0)
    with pytest.raises(UserError, match=f"--layers {full.num_hidden_layers + 1} is more than {name}'s"):
        full.with_layers(full.num_hidden_layers + 1)     # cut, never grown
