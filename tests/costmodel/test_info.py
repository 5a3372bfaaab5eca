"""costmodel.info: what `llmecon model-info` shows (one model's parameters, FLOPs and bytes; the presets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmecon.costmodel.info import DEFAULT_DTYPE, DEFAULT_SEQ_LEN, list_models, model_info
from llmecon.costmodel.presets import list_presets, load_model_shape
from llmecon.errors import UserError
from llmecon.vocab import CONVENTIONS, DTYPES

TINY_CONFIGS = json.loads((Path(__file__).parents[1] / "data" / "tiny_configs.json").read_text())["configs"]

LLAMA3_8B_PARAMS = 8_030_261_248   # meta-llama/Meta-Llama-3-8B config.json, counted as transformers does


def test_info_llama_3_8b_parameters_flops_and_bytes():
    info = model_info("llama-3-8b", seq_len=512)
    assert info["params_total"] == LLAMA3_8B_PARAMS
    assert {"params_non_embedding", "params_active", "forward_flops", "bytes"} <= set(info)
    assert set(info["forward_flops"]) == {"article", "non_embedding", "causal", "executed"}
    assert info["forward_flops"]["article"] == 2 * LLAMA3_8B_PARAMS * 512
    b = info["bytes"]
    assert b["weights"]["bf16"] == 2 * LLAMA3_8B_PARAMS
    assert b["kv_cache_per_token"] == 2 * 32 * 8 * 128 * 2          # K and V x 32 layers x 8 KV heads x 128 x bf16
    assert sum(b["training_memory"]["breakdown_bytes_per_param"].values()) == 20


def test_info_every_phase_is_given_in_every_convention():
    info = model_info("tiny", seq_len=64)
    for key in ("forward_flops", "decode_step_flops", "train_step_flops"):
        assert tuple(info[key]) == CONVENTIONS, key
    assert set(info["bytes"]["weights"]) == set(DTYPES)
    assert info["bytes"]["kv_cache_at_seq_len"] == 64 * info["bytes"]["kv_cache_per_token"]


def test_info_defaults_are_seq_len_2048_and_bf16():
    info = model_info("tiny")
    assert (info["seq_len"], info["dtype"]) == (DEFAULT_SEQ_LEN, DEFAULT_DTYPE) == (2048, "bf16")


def test_info_moe_config_folder_has_fewer_active_than_total_params(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIGS["mixtral"]))
    info = model_info(tmp_path, seq_len=16)
    assert info["num_experts"] == 4 and info["num_experts_per_tok"] == 2
    assert 0 < info["params_active"] < info["params_total"]


def test_info_a_length_beyond_the_model_is_still_priced():
    """A what-if: gpt2 attends 1,024 positions, yet 4,096 is priced (the CLI adds a note saying so)."""
    info = model_info("gpt2", seq_len=4096)
    assert info["max_position_embeddings"] == 1024
    assert info["forward_flops"]["article"] == 2 * load_model_shape("gpt2").params_total * 4096


def test_info_list_models_is_every_preset_in_order():
    rows = list_models()
    assert [r["name"] for r in rows] == list_presets()
    assert "palm-540b" in {r["name"] for r in rows}
    llama = next(r for r in rows if r["name"] == "llama-3-8b")
    assert llama["params_total"] == llama["params_active"] == LLAMA3_8B_PARAMS


@pytest.mark.parametrize("args, message", [
    (("no-such-model",), "unknown model 'no-such-model'"),
    (("tiny", 0), "--seq-len must be > 0"),
    (("tiny", 1.5), "--seq-len must be a whole number"),
    (("tiny", 16, "fp4"), "unknown --dtype 'fp4'"),
])
def test_info_refuses_bad_input_naming_the_option(args, message):
    with pytest.raises(UserError, match=message):
        model_info(*args)
