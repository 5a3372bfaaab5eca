"""The memory check a real run makes before anything runs: which configurations are skipped, and why."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from llmecon.costmodel.hardware import get_accelerator
from llmecon.measure import runner
from llmecon.measure.memcheck import config_footprint, memory_skips, oom_reason
from llmecon.measure.runner import run_bench
from llmecon.measure.spec import BenchSpec, default_suite, plan

H200 = get_accelerator("h200").memory_bytes
GIB = 2.0**30


def _suite_skips(memory_bytes: float, **changes) -> dict[tuple, str]:
    spec = dataclasses.replace(default_suite("cuda"), **changes)
    configs = plan(spec, "cuda:0", "cuda")
    by_id = {c["config_id"]: c for c in configs}
    return {(by_id[i]["model"], by_id[i]["phase"], by_id[i]["batch_size"], by_id[i]["seq_len"]): reason
            for i, reason in memory_skips(spec, configs, memory_bytes).items()}


def test_memcheck_default_cuda_suite_8b_training_at_batch_8_and_32_does_not_fit_an_h200():
    skips = _suite_skips(H200)
    for batch in (8, 32):
        for seq in (512, 2048):
            reason = skips[("llama-3-8b", "train", batch, seq)]
            needs, usable, total = map(float, re.findall(r"([\d.]+) GiB", reason))
            assert reason.startswith("predicted_oom: needs ") and needs > usable and total == pytest.approx(H200 / GIB, abs=0.05)
    assert not [k for k in skips if k[1] != "train"]          # inference fits, both models
    assert not [k for k in skips if k[0] == "llama-3.2-1b" and k[2] < 32]   # the 1B trains at batch 1 and 8


def test_memcheck_llama_1b_fits_and_its_largest_training_batch_names_its_needs():
    skips = _suite_skips(H200)
    assert ("llama-3.2-1b", "train", 8, 2048) not in skips
    assert ("llama-3.2-1b", "train", 32, 2048) in skips    # 65k tokens of 128k-vocab logits in fp32
    assert "--no-memory-check" in skips[("llama-3.2-1b", "train", 32, 2048)]


def test_memcheck_off_or_unknown_memory_skips_nothing():
    assert _suite_skips(H200, memory_check=False) == {}
    assert _suite_skips(None) == {} and _suite_skips(0) == {}


def test_memcheck_reason_names_needed_usable_and_device_memory():
    reason = oom_reason(131.2 * GIB, 139.7 * GIB)
    assert reason.startswith("predicted_oom: needs 131.2 GiB of 125.7 GiB usable (139.7 GiB less 10% headroom")
    assert oom_reason(9 * 2**20, 8 * 2**20).startswith("predicted_oom: needs 9 MiB of 7.2 MiB usable (8 MiB")
    assert oom_reason(100 * GIB, 139.7 * GIB) is None


def test_memcheck_uses_the_model_as_built():
    spec = BenchSpec(models=("llama-3-8b",), phases=("train",), seq_lens=(512,), layers=4, device="cuda")
    (cfg,) = plan(spec, "cuda:0", "cuda")
    four = config_footprint(cfg)["total_bytes"]
    full = config_footprint({**cfg, "layers": None})["total_bytes"]
    assert four < full / 3


@pytest.mark.slow
@pytest.mark.parametrize("check", [True, False])
def test_memcheck_real_run_records_predicted_ooms_as_skipped_before_any_worker(tmp_path, monkeypatch, check):
    """The runner's hook: with the probed memory planted small, the tiny train at batch 4 is predicted not
    to fit and recorded as skipped, with both sizes in the reason; --no-memory-check runs it."""
    probe = runner.probe_device

    def small_device(device):
        return {**probe(device), "memory_bytes": 4 * 2**20}   # 3.6 MiB usable: batch 1 (2.5) fits, 4 (5.4) not

    monkeypatch.setattr(runner, "probe_device", small_device)
    spec = BenchSpec(models=("tiny",), phases=("train",), batch_sizes=(1, 4), seq_lens=(64,), device="cpu",
                     isolate=False, rounds=1, target_rel_ci=0.0, min_iters=1, min_time_s=0.0, warmup_iters=0,
                     memory_check=check)
    run_dir = run_bench(spec, tmp_path, progress=False)
    records = {r["config"]["batch_size"]: r for r in
               (json.loads(p.read_text()) for p in (run_dir / "records").glob("*.json"))}
    assert records[1]["status"] == "ok"
    if check:
        assert records[4]["status"] == "skipped"
        (reason,) = records[4]["reasons"]
        assert re.fullmatch(r"predicted_oom: needs 5\.\d+ MiB of 3\.6 MiB usable \(4 MiB less 10% headroom; "
                            r"--no-memory-check runs it anyway\)", reason), reason
    else:
        assert records[4]["status"] == "ok"


def test_memcheck_generate_request_holds_what_a_decode_pass_of_new_tokens_minus_one_steps_holds():
    base = {"model": "llama-3-8b", "batch_size": 8, "seq_len": 2048, "dtype": "bf16", "device": "cuda:0",
            "static_cache": False}
    generate = config_footprint({**base, "phase": "generate", "new_tokens": 32})
    assert generate == config_footprint({**base, "phase": "decode", "new_tokens": 31})
    decode = config_footprint({**base, "phase": "decode", "new_tokens": 32})
    assert generate["parts_bytes"]["kv_cache"] == decode["parts_bytes"]["kv_cache"] * (2048 + 31) / (2048 + 32)
