"""Models as users name them: presets, config.json files, folders and dicts, each resolved or refused in one line."""

import json
from pathlib import Path

import pytest

from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.presets import config_name, list_presets, load_model_shape
from llmecon.errors import UserError

TINY_CONFIGS = json.loads((Path(__file__).parents[1] / "data" / "tiny_configs.json").read_text())["configs"]


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_presets_required_presets_present():
    need = {"gpt3-175b", "gopher-280b", "mt-nlg-530b", "palm-540b", "chinchilla-70b", "gpt2", "gpt2-medium",
            "gpt2-large", "gpt2-xl", "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b",
            "llama-3-405b", "llama-3.2-1b", "mistral-7b", "mixtral-8x7b", "qwen2.5-0.5b", "qwen2.5-7b", "tiny"}
    assert need <= set(list_presets())


def test_presets_load_from_file_folder_dict_and_preset(tmp_path):
    cfg = TINY_CONFIGS["llama_gqa"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    from_file = load_model_shape(tmp_path / "config.json")
    from_dir = load_model_shape(str(tmp_path))
    from_dict = load_model_shape(cfg)
    assert from_file.params_total == from_dir.params_total == from_dict.params_total
    assert from_file.name == from_dir.name == tmp_path.name   # a config without _name_or_path: its folder
    assert load_model_shape("TINY").name == "tiny"
    assert isinstance(load_model_shape("tiny"), ModelShape)


@pytest.mark.slow
def test_presets_real_hf_config_file_with_extra_keys(build_hf):
    """A config.json as published on the Hub (architectures, torch_dtype, rope_scaling, ...)."""
    path = Path(__file__).parents[1] / "data" / "llama-3.2-1b-config.json"
    shape = load_model_shape(path)
    preset = load_model_shape("llama-3.2-1b")
    assert shape.params_total == preset.params_total == 1_235_814_400
    assert shape.head_dim == 64 and shape.tie_word_embeddings
    assert count_params(build_hf(dict(shape.hf_config), device="meta")) == shape.params_total


def test_presets_bad_paths_and_names(tmp_path):
    with pytest.raises(UserError, match="unknown model 'no-such-model'.*tiny"):
        load_model_shape("no-such-model")
    with pytest.raises(UserError, match="no config.json"):
        load_model_shape(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_model_shape(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match="JSON object"):
        load_model_shape(bad)
    bad.write_bytes(b"\xff\xfe{}")  # not UTF-8 (a UTF-16 file, say)
    with pytest.raises(UserError, match="not UTF-8"):
        load_model_shape(bad)
    bad.write_text('{"model_type": "llama", "vocab_size": NaN, "hidden_size": 64, "intermediate_size": 128, '
                   '"num_hidden_layers": 2, "num_attention_heads": 4}')  # Python's json reads NaN
    with pytest.raises(UserError, match="vocab_size must be an integer"):
        load_model_shape(bad)


def test_presets_config_name_prefers_name_or_path_then_the_folder(tmp_path):
    cfg = dict(TINY_CONFIGS["llama_gqa"])
    folder = tmp_path / "My-Llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    assert load_model_shape(folder / "config.json").name == "My-Llama"          # never "config.json"
    (folder / "config.json").write_text(json.dumps({**cfg, "_name_or_path": "meta-llama/Llama-3.2-1B"}))
    assert load_model_shape(folder).name == "meta-llama/Llama-3.2-1B"
    assert config_name({}, tmp_path / "other.json") == "other.json" and config_name({"model_type": "gpt2"}, None) == "gpt2"
