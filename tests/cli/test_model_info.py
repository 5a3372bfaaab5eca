"""`llmecon model-info`: one model's parameters, FLOPs and bytes, or the presets; bad input in one line."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.costmodel.info import DEFAULT_DTYPE, DEFAULT_SEQ_LEN, list_models, model_info
from llmecon.costmodel.presets import list_presets

TINY_CONFIGS = json.loads((Path(__file__).parents[1] / "data" / "tiny_configs.json").read_text())["configs"]


def test_cli_model_info_json():
    result = CliRunner().invoke(main, ["model-info", "llama-3-8b", "--seq-len", "512", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["params_total"] == 8_030_261_248
    assert {"params_non_embedding", "params_active", "forward_flops", "bytes"} <= set(info)
    assert set(info["forward_flops"]) == {"article", "non_embedding", "causal", "executed"}
    assert info["forward_flops"]["article"] == 2 * 8_030_261_248 * 512
    b = info["bytes"]
    assert b["weights"]["bf16"] == 2 * 8_030_261_248
    assert b["kv_cache_per_token"] == 2 * 32 * 8 * 128 * 2
    assert sum(b["training_memory"]["breakdown_bytes_per_param"].values()) == 20


def test_cli_model_info_table_and_config_path(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIGS["mixtral"]))
    result = CliRunner().invoke(main, ["model-info", str(tmp_path), "--seq-len", "16"])
    assert result.exit_code == 0, result.output
    assert "params active per token" in result.stdout and "executed" in result.stdout
    assert "exceeds" not in result.stdout
    # a shape the model cannot run is still priced (a what-if), but said so
    beyond = CliRunner().invoke(main, ["model-info", "gpt2", "--seq-len", "4096"])
    assert beyond.exit_code == 0 and "exceeds the model's max_position_embeddings 1,024" in beyond.stdout


def test_cli_model_info_json_is_the_library_dict():
    result = CliRunner().invoke(main, ["model-info", "mixtral-8x7b", "--seq-len", "4096", "--dtype", "fp8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(model_info("mixtral-8x7b", 4096, "fp8")))


def test_cli_model_info_defaults_are_the_librarys():
    out = json.loads(CliRunner().invoke(main, ["model-info", "tiny", "--json"]).stdout)
    assert (out["seq_len"], out["dtype"]) == (DEFAULT_SEQ_LEN, DEFAULT_DTYPE)


def test_cli_model_info_list():
    result = CliRunner().invoke(main, ["model-info", "--list", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list_presets() and rows == json.loads(json.dumps(list_models()))
    table = CliRunner().invoke(main, ["model-info", "--list"])
    assert "palm-540b" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["model-info", "no-such-model"], "unknown model 'no-such-model'"),
    (["model-info", "tiny", "--dtype", "fp4"], "Invalid value for '--dtype'"),
    (["model-info", "tiny", "--seq-len", "0"], "--seq-len must be > 0"),
    (["model-info"], "needs a MODEL"),
    # click's own usage errors (a value of the wrong type, an unknown choice) are one line too
    (["model-info", "tiny", "--seq-len", "nan"], "Invalid value for '--seq-len'"),
])
def test_cli_model_info_bad_input_is_one_line_exit_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmecon: error: ") and message in lines[0]
    assert "Traceback" not in result.output
