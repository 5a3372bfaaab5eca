"""The workloads on a real tiny model: decode times one step per sample at known positions; training runs."""

from __future__ import annotations

import pytest

from llmecon.measure.models import build_model
from llmecon.measure.workloads import run_workload
from llmecon.measure.timing import DEFAULT_KNOBS
from llmecon.records.schema import Knobs

pytestmark = pytest.mark.slow   # every test here builds a model


@pytest.mark.parametrize("static_cache", [False, True])
def test_workloads_decode_times_one_step_per_sample_at_known_positions(static_cache):
    built = build_model("tiny", device="cpu", dtype="fp32")
    out = run_workload(built, "decode", batch_size=2, seq_len=8, new_tokens=3, dtype="fp32", device="cpu",
                       static_cache=static_cache,
                       knobs=Knobs(warmup_iters=1, min_iters=4, min_time_s=0.0, max_time_s=5.0))
    t = out["round"]
    assert t["validity"]["valid"], t["validity"]
    assert t["n_samples"] == 6  # min_iters rounded up to whole passes of 3 steps
    assert t["context_positions"] == [8, 9, 10, 8, 9, 10]
    assert t["warmup_iters"] == 2  # cold call + 2 = one full untimed pass
    assert all(s > 0 for s in t["samples_s"]) and out["timing_extra"]["prompt_prefill_s"] > 0
    assert out["tokens_per_step"] == 2 and out["ops"] is None   # not asked to count


def test_workloads_generate_times_whole_requests_and_keeps_each_ones_ttft_and_steps():
    built = build_model("tiny", device="cpu", dtype="fp32")
    out = run_workload(built, "generate", batch_size=2, seq_len=16, new_tokens=4, dtype="fp32", device="cpu",
                       knobs=Knobs(warmup_iters=1, min_iters=2, min_time_s=0.0, max_time_s=5.0))
    t = out["round"]
    assert t["validity"]["valid"], t["validity"]
    n = t["n_samples"]
    assert n >= 2 and t["warmup_iters"] == 1 and len(t["ttft_samples_s"]) == n and len(t["tpot_samples_s"]) == 3 * n
    for i, sample in enumerate(t["samples_s"]):   # a request is its TTFT plus its three steps, exactly
        assert sample == pytest.approx(t["ttft_samples_s"][i] + sum(t["tpot_samples_s"][3 * i:3 * i + 3]), rel=1e-12)
    assert all(s > 0 for s in t["tpot_samples_s"]) and t["first_call_s"] > 0
    assert out["tokens_per_step"] == 8 and out["timing_extra"]["cache"] == "dynamic"
    assert out["telemetry"]["tokens_in_samples"] == 8 * n
    with pytest.raises(ValueError, match="new_tokens >= 2"):
        run_workload(built, "generate", batch_size=1, seq_len=16, new_tokens=1, dtype="fp32", device="cpu")


def test_workloads_train_with_activation_checkpointing_runs():
    built = build_model("tiny", device="cpu", dtype="fp32", train=True)
    out = run_workload(built, "train", batch_size=2, seq_len=16, new_tokens=0, dtype="fp32", device="cpu",
                       activation_checkpointing=True,
                       knobs=Knobs(warmup_iters=1, min_iters=2, min_time_s=0.0, max_time_s=5.0))
    assert out["round"]["validity"]["valid"] and out["timing_extra"]["final_loss"] > 0
    assert out["timing_extra"]["master_dtype"] == "fp32" and out["telemetry"]["reason"]


def test_workloads_default_knobs_are_the_device_kinds():
    built = build_model("tiny", device="cpu", dtype="fp32")
    out = run_workload(built, "prefill", batch_size=1, seq_len=8, new_tokens=0, dtype="fp32", device="cpu")
    assert out["round"]["n_samples"] >= DEFAULT_KNOBS["cpu"].min_iters
    assert out["round"]["stop"] in ("precision", "max_time", "max_iters")   # the CPU default has a precision target


def test_workloads_count_ops_of_one_untimed_step_for_every_phase():
    """Counting happens after the round, outside the timed window; the counts are the same every time."""
    knobs = Knobs(warmup_iters=1, min_iters=2, min_time_s=0.0, max_time_s=5.0)
    built = build_model("tiny", device="cpu", dtype="fp32")
    counts = {}
    for phase in ("prefill", "decode"):
        outs = [run_workload(built, phase, batch_size=1, seq_len=8, new_tokens=2, dtype="fp32", device="cpu",
                             knobs=knobs, count_ops=True) for _ in range(2)]
        assert outs[0]["ops"] == outs[1]["ops"] and outs[0]["ops"]["aten_ops_per_step"] > 0
        assert outs[0]["round"]["n_samples"] >= 2
        counts[phase] = outs[0]["ops"]["aten_op_counts"]
    assert counts["prefill"] != counts["decode"]   # a decode step reads a cache: other operators
    train = build_model("tiny", device="cpu", dtype="fp32", train=True)
    out = run_workload(train, "train", batch_size=1, seq_len=8, new_tokens=0, dtype="fp32", device="cpu",
                       knobs=knobs, count_ops=True)
    assert out["ops"]["aten_op_counts"].get("aten.addcdiv_", 0) > 0   # AdamW's update: the optimizer step counts
