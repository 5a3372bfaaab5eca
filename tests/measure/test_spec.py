"""The sweep: BenchSpec validates and does nothing else; the default suite per device; the plan's order and ids."""

from __future__ import annotations

import pytest

from llmecon.errors import UserError
from llmecon.measure.spec import BenchSpec, default_suite, plan
from llmecon.measure.timing import DEFAULT_KNOBS


@pytest.mark.parametrize("kw", [
    {"phases": ("serve",)}, {"dtype": "fp8"}, {"batch_sizes": (0,)}, {"seq_lens": ()}, {"device": "tpu"},
    {"new_tokens": 0}, {"layers": 0}, {"attn_implementation": "flash"}, {"timeout_s": 0}, {"models": ()},
    {"batch_sizes": (1.5,)}, {"threads": 0}, {"weights": "hub"}, {"name": "x", "models": ("tiny", "gpt2")},
])
def test_spec_refuses_bad_values(kw):
    with pytest.raises(UserError):
        BenchSpec(**{"models": ("tiny",), **kw})


def test_spec_knobs_default_per_device_kind_and_refuse_a_cap_below_the_minimum():
    spec = BenchSpec(models=("tiny",))
    assert spec.knobs("cpu") == DEFAULT_KNOBS["cpu"] and spec.knobs("cuda") == DEFAULT_KNOBS["cuda"]
    assert BenchSpec(models=("tiny",), min_iters=7).knobs("cpu").min_iters == 7
    with pytest.raises(UserError, match="--min-time .* exceeds --max-time"):
        BenchSpec(models=("tiny",), min_time_s=5.0, max_time_s=1.0).knobs("cpu")   # every window would be cut
    assert spec.resolved_dtype("cpu") == "fp32" and spec.resolved_dtype("cuda") == "bf16"


def test_spec_default_suites_and_plan_order():
    cpu = default_suite("cpu")
    assert cpu.device == "cpu" and cpu.models == ("tiny",) and set(cpu.phases) == {"prefill", "decode", "train"}
    assert cpu.knobs("cpu") == DEFAULT_KNOBS["cpu"]            # the suite times like the CLI and the API
    gpu = default_suite("cuda")
    assert "llama-3-8b" in gpu.models and gpu.resolved_dtype("cuda") == "bf16"
    with pytest.raises(UserError):
        default_suite("tpu")
    configs = plan(BenchSpec(models=("tiny",), phases=("prefill",), batch_sizes=(8, 1, 4), seq_lens=(16,)), "cpu",
                   "cpu")
    assert [c["batch_size"] for c in configs] == [1, 4, 8]  # increasing: an OOM skips what follows
    # a value given twice is one configuration, measured once (not N times over the same record)
    twice = plan(BenchSpec(models=("tiny", "tiny"), phases=("prefill", "prefill"), batch_sizes=(1, 1),
                           seq_lens=(16, 16)), "cpu", "cpu")
    assert [c["config_id"] for c in twice] == [configs[0]["config_id"]]
    assert len({c["config_id"] for c in configs}) == 3
    assert plan(BenchSpec(models=("tiny",), phases=("prefill",), batch_sizes=(1,), seq_lens=(16,)), "cpu", "cpu")[0][
        "config_id"] == configs[0]["config_id"]  # deterministic: --resume finds the same ids


def test_spec_round_trips_through_its_dict():
    spec = BenchSpec(models=("tiny",), phases=("decode",), batch_sizes=(1, 4), min_iters=3, name="mine")
    assert BenchSpec.from_dict(spec.to_dict()) == spec


def test_spec_plan_names_the_model_and_refuses_shapes_beyond_context(tmp_path):
    (tmp_path / "My-Model").mkdir()
    (tmp_path / "My-Model" / "config.json").write_text(
        '{"model_type": "llama", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, '
        '"num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 128}')
    config = str(tmp_path / "My-Model" / "config.json")
    (cfg,) = plan(BenchSpec(models=(config,), phases=("prefill",), seq_lens=(16,)), "cpu", "cpu")
    assert cfg["name"] == "My-Model" and cfg["config_id"].startswith("prefill-My-Model-fp32-b1-s16-")
    (named,) = plan(BenchSpec(models=(config,), phases=("prefill",), seq_lens=(16,), name="mine"), "cpu", "cpu")
    assert named["name"] == "mine" and named["config_id"].startswith("prefill-mine-")
    with pytest.raises(UserError, match="seq_len 256 exceeds My-Model's max_position_embeddings 128"):
        plan(BenchSpec(models=(config,), phases=("prefill",), seq_lens=(256,)), "cpu", "cpu")


def test_spec_plan_refuses_more_layers_than_the_model_has():
    spec = BenchSpec(models=("tiny",), phases=("prefill",), seq_lens=(16,), layers=3)   # valid on its own
    with pytest.raises(UserError, match="^--layers 3 is more than tiny's 2 layers$"):
        plan(spec, "cpu", "cpu")
    (cfg,) = plan(BenchSpec(models=("tiny",), phases=("prefill",), seq_lens=(16,), layers=1), "cpu", "cpu")
    assert cfg["layers"] == 1 and cfg["name"] == "tiny"


def test_spec_generate_is_bench_only_and_needs_two_new_tokens():
    """generate: new_tokens is the output tokens per sequence (a first token and at least one decode step); the
    default phases stay the three calibrate fits; the cache holds seq_len + new_tokens - 1 positions."""
    assert BenchSpec(models=("tiny",)).phases == ("prefill", "decode", "train")
    with pytest.raises(UserError, match="--phase generate needs --new-tokens >= 2"):
        BenchSpec(models=("tiny",), phases=("generate",), new_tokens=1)
    with pytest.raises(UserError, match="drop --compile"):
        BenchSpec(models=("tiny",), phases=("generate",), compile=True)
    configs = plan(BenchSpec(models=("tiny",), phases=("generate",), seq_lens=(16,), new_tokens=4,
                             static_cache=True), "cpu", "cpu")
    assert configs[0]["new_tokens"] == 4 and configs[0]["static_cache"] is False
    assert configs[0]["config_id"].startswith("generate-tiny-fp32-b1-s16-n4-")
    ctx = 2048   # tiny's max_position_embeddings: 2045 + 4 - 1 fits, 2046 + 4 - 1 does not
    assert plan(BenchSpec(models=("tiny",), phases=("generate",), seq_lens=(ctx - 3,), new_tokens=4), "cpu", "cpu")
    with pytest.raises(UserError, match="seq_len 2046 \\+ new_tokens 4 - 1 = 2049 exceeds"):
        plan(BenchSpec(models=("tiny",), phases=("generate",), seq_lens=(ctx - 2,), new_tokens=4), "cpu", "cpu")
