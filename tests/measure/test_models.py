"""Models built for benchmarking: from a config, on the device, k layers at full width, never remote code."""

from __future__ import annotations

import pytest

from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.measure.models import build_model, built_shape


def _four_layer_config() -> dict:
    """The tiny preset with 4 layers and a per-layer list (as Gemma-style configs have)."""
    return {**load_model_shape("tiny").hf_config, "num_hidden_layers": 4,
            "layer_types": ["full_attention", "sliding_attention"] * 2}


def test_models_built_shape_is_k_layers_at_full_width_with_per_layer_lists_cut():
    shape, full = built_shape(_four_layer_config(), 2)
    assert (shape.num_hidden_layers, full.num_hidden_layers) == (2, 4)
    assert shape.hf_config["num_hidden_layers"] == 2
    assert shape.hf_config["layer_types"] == ["full_attention", "sliding_attention"]
    assert full.hf_config["layer_types"] == ["full_attention", "sliding_attention"] * 2    # the full model untouched
    assert shape.hidden_size == full.hidden_size and shape.hf_config["hidden_size"] == 64
    whole, same = built_shape("tiny", None)
    assert whole.num_hidden_layers == same.num_hidden_layers == 2


@pytest.mark.parametrize("layers", [5, 40])
def test_models_with_layers_refuses_more_layers_than_the_model_has(layers):
    full = load_model_shape(_four_layer_config())
    with pytest.raises(UserError) as info:
        full.with_layers(layers)
    assert str(info.value) == f"--layers {layers} is more than {full.name}'s 4 layers"    # one line, never grown
    with pytest.raises(UserError, match=f"--layers {layers} is more than"):
        built_shape(_four_layer_config(), layers)
    assert full.with_layers(4) is full


@pytest.mark.slow
def test_models_layers_builds_first_k_at_full_width():
    built = build_model("tiny", device="cpu", dtype="fp32", layers=1, attn_implementation="eager")
    assert built.layers_built == 1 and built.layer_scale == 2.0
    assert len(built.model.model.layers) == 1
    assert built.model.config._attn_implementation == "eager"
    assert built.shape.hidden_size == built.full_shape.hidden_size
    with pytest.raises(UserError, match="--layers 3 is more than tiny's 2 layers"):
        build_model("tiny", device="cpu", dtype="fp32", layers=3)


@pytest.mark.slow
def test_models_remote_code_configs_are_refused():
    cfg = dict(load_model_shape("tiny").hf_config)
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    with pytest.raises(UserError, match="remote code"):
        build_model(cfg, device="cpu", dtype="fp32")


@pytest.mark.slow
def test_models_real_weights_only_from_a_local_folder(tmp_path):
    import torch

    saved = build_model("tiny", device="cpu", dtype="fp32", seed=123)
    saved.model.save_pretrained(tmp_path)
    loaded = build_model(str(tmp_path), device="cpu", dtype="fp32", weights="local")
    for (name, a), (_, b) in zip(saved.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.weights == "local"
    with pytest.raises(UserError, match="local model folder"):
        build_model("tiny", device="cpu", dtype="fp32", weights="local")
