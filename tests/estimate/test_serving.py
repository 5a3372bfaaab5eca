"""`plan_serve`: the plan is the largest concurrency meeting the targets (checked against every concurrency), the
binding constraint is the one the next concurrency misses, lengths files and bad input."""

from __future__ import annotations

import pytest

from llmecon.calibration.fit import fit_calibration
from llmecon.errors import UserError
from llmecon.estimate.serving import plan_serve


@pytest.fixture(scope="module")
def calib(plant):
    return fit_calibration(plant.report_frame())


def plan(calib, **kw):
    base = {"calibration": calib, "prompt_tokens": 128, "output_tokens": 32, "usd_per_hour": 1.0, "memory": "2G"}
    return plan_serve("tiny", **(base | kw))


def test_plan_is_the_largest_concurrency_that_meets_the_targets(calib):
    loose = plan(calib)
    tpot_at_16 = next(r["tpot_s"] for r in loose["rows"] if r["concurrency"] == 16)
    out = plan(calib, tpot_slo=tpot_at_16 * 1.0001)
    every = plan(calib, tpot_slo=tpot_at_16 * 1.0001, concurrency=",".join(map(str, range(1, 40))))["rows"]
    ok = [r["concurrency"] for r in every if r["ok"]]
    assert out["plan"]["concurrency"] == max(ok) == 16 and out["binding"] == "tpot"
    assert min(r["usd_per_request"] for r in every if r["ok"]) == out["plan"]["usd_per_request"]
    assert [r["concurrency"] for r in out["rows"] if r["plan"]] == [16]


def test_without_targets_memory_binds(calib):
    out = plan(calib)
    assert out["binding"] == "memory" and out["plan"]["concurrency"] == out["max_concurrency"]
    assert out["plan"]["kv_cache_bytes"] + out["weight_bytes"] <= out["usable_bytes"]


def test_a_ttft_target_binds_when_it_is_the_tighter(calib):
    loose = plan(calib)
    ttft_at_64 = next(r["ttft_p90_s"] for r in loose["rows"] if r["concurrency"] == 64)
    out = plan(calib, ttft_slo=ttft_at_64 * 1.0001)
    assert out["plan"]["concurrency"] == 64 and out["binding"] == "ttft"


def test_unreachable_target_gives_no_plan_and_says_why(calib):
    out = plan(calib, tpot_slo="1us")
    assert out["plan"] is None and "tpot already fails" in out["binding"]


def test_lengths_file_charges_each_prompts_prefill(calib, tmp_path):
    path = tmp_path / "req.csv"
    path.write_text("prompt_tokens,output_tokens\n64,16\n256,48\n")
    out = plan(calib, prompt_tokens=None, output_tokens=None, lengths=str(path), concurrency="4")
    one = {p: plan(calib, prompt_tokens=p, output_tokens=32, concurrency="4")["prefill"]["mean_s"] for p in (64, 256)}
    assert out["prefill"]["mean_s"] == pytest.approx((one[64] + one[256]) / 2)
    assert out["lengths"]["requests"] == 2 and out["lengths"]["decode_context"] == round((15 * 72 + 47 * 280) / 62)


@pytest.mark.parametrize("kw,message", [
    ({"tpot_slo": "0"}, "--tpot-slo must be > 0"),
    ({"ttft_slo": "-1s"}, "--ttft-slo must be a duration"),
    ({"prompt_tokens": -3}, "--prompt-tokens must be > 0"),
    ({"output_tokens": 1}, "--output-tokens must be at least 2"),
    ({"concurrency": "100000000"}, "--concurrency 100000000: its KV cache does not fit"),
    ({"memory": "1k"}, "do not fit in"),
    ({"lengths": "nope.csv"}, "give --lengths FILE or --prompt-tokens"),
])
def test_bad_input_is_one_line(calib, kw, message):
    with pytest.raises(UserError, match=message):
        plan(calib, **kw)


def test_published_basis_plans_from_the_published_prefill_and_decode_fits():
    out = plan_serve("llama-3-8b", hardware="h100-sxm", prompt_tokens=512, output_tokens=128, usd_per_hour=3,
                     tpot_slo="50ms")
    assert out["basis"] == "published" and out["plan"]["tpot_s"] <= 0.05 and out["binding"] == "tpot"
    for phase in ("prefill", "decode"):
        assert out[phase]["label"].startswith(f"published tensorrt-llm points on h100-sxm (fp8 {phase})")
        assert out[phase]["sources"] and all(s.startswith("https://") for s in out[phase]["sources"])
    with pytest.raises(UserError, match="no published prefill of torchtitan.*needs both a prefill and a decode"):
        plan_serve("llama-3-8b", hardware="h100-sxm", engine="torchtitan", prompt_tokens=512, output_tokens=128,
                   usd_per_hour=3)


def test_tensor_parallel_splits_the_work_keeps_the_overhead_and_adds_the_all_reduces(calib):
    from llmecon.calibration.apply import predict_workload
    from llmecon.costmodel import communication as cc
    from llmecon.costmodel.presets import load_model_shape

    one = plan(calib, concurrency="8")
    two = plan(calib, concurrency="8", tensor_parallel=2, busbw="10")
    shape = load_model_shape("tiny")
    pred = predict_workload(calib, shape, "decode", 8, two["lengths"]["decode_context"], hardware=two["hardware_id"],
                            dtype=two["dtype"])
    terms = pred["terms_s"]
    comm = cc.comm_time_s(cc.tp_step_bytes(shape, 8, 1, two["dtype"], "decode"), 2, 10e9)
    r1, r2 = one["rows"][0], two["rows"][0]
    assert r1["decode_step_s"] == pytest.approx(sum(terms.values()))
    assert r2["decode_step_s"] == pytest.approx((terms["compute"] + terms["memory"]) / 2 + terms["overhead"] + comm)
    assert r2["decode_tp_comm_s"] == pytest.approx(comm) and comm > 0
    assert two["weight_bytes"] == pytest.approx(one["weight_bytes"] / 2) and two["num_accelerators"] == 2
    assert r2["usd_per_request"] * r2["requests_per_s"] == pytest.approx(2 * 1.0 / 3600)  # a replica: 2 accel-hours
    assert two["tensor_parallel"]["busbw_source"] == "--busbw (measured)"
    assert any("Tensor parallel over 2" in n for n in two["notes"])


def test_tensor_parallel_bad_input_is_one_line(calib):
    with pytest.raises(UserError, match="multiple of 3"):
        plan(calib, tensor_parallel=3, busbw="10")
    with pytest.raises(UserError, match="no link bandwidth"):
        plan(calib, tensor_parallel=2)
    with pytest.raises(UserError, match="not a whole number of 2-accelerator replicas"):
        plan(calib, tensor_parallel=2, busbw="10", num_accelerators=3)
    with pytest.raises(UserError, match="spans one node"):
        plan_serve("gpt3-175b", hardware="h100-sxm", prompt_tokens=128, output_tokens=32, usd_per_hour=1.0,
                   tensor_parallel=16, tpot_slo="50ms")
