"""The distributed bench (measure.distributed, measure.rankfailure, measure.distributed_run): merging ranks, the
failure verdict and lockstep timing without processes; then real torchrun jobs of 2 gloo ranks on this CPU: DDP
and FSDP2 records, the gathered record against the per-rank ones, the counted collectives against a hand count, a
killed rank, a hung rank and an OOM on one rank, tensor parallelism, and torchrun typed by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmecon.costmodel.communication import step_bytes
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.measure.distributed import merge_round, rank_results, torchrun_env
from llmecon.measure.rankfailure import failure_report, verdict
from llmecon.measure.spec import BenchSpec, plan
from llmecon.measure.timing import lockstep, measure
from llmecon.records.schema import Knobs
from llmecon.records.store import read_record, record_files

SRC = Path(__file__).resolve().parents[2] / "src"
FAST = dict(rounds=1, min_iters=3, min_time_s=0.0, precision=0, warmup_iters=1)


def _out(samples, *, energy=None, peak=None, valid=True, reasons=(), warnings=()):
    return {"round": {"samples_s": list(samples), "device_samples_s": None, "first_call_s": 0.5, "warmup_iters": 1,
                      "n_samples": len(samples), "total_s": sum(samples), "stop": "minimums", "cap_s": 1.0,
                      "mean_s": None, "median_s": None, "ci_low_s": None, "ci_high_s": None,
                      "validity": {"valid": valid, "reasons": list(reasons), "warnings": list(warnings)}},
            "timing_extra": {}, "telemetry": {"energy_j": energy, "mean_power_w": None, "window_energy_j": None},
            "memory": {"peak_bytes": peak}, "ops": None, "tokens_per_step": 64}


def test_merge_round_takes_the_slowest_rank_per_sample_and_the_jobs_tokens_and_energy():
    a = _out([1.0, 3.0, 2.0], energy=10.0, peak=5.0, warnings=["host_busy:0.50_other_cores"])
    b = _out([2.0, 1.0, 2.5], energy=12.0, peak=7.0, warnings=["host_busy:0.70_other_cores"])
    merged = merge_round([a, b], dp_degree=2)
    assert merged["round"]["samples_s"] == [2.0, 3.0, 2.5]
    assert merged["round"]["mean_s"] == pytest.approx(2.5)
    assert merged["tokens_per_step"] == 128 and merged["telemetry"]["tokens_in_samples"] == 3 * 128
    assert merged["telemetry"]["energy_j"] == 22.0 and merged["memory"]["peak_bytes"] == 7.0
    assert merged["round"]["validity"]["valid"]
    assert len([w for w in merged["round"]["validity"]["warnings"] if w.startswith("host_busy")]) == 1


def test_merge_round_of_ranks_out_of_step_is_invalid():
    merged = merge_round([_out([1.0, 1.0, 1.0]), _out([1.0, 1.0])], dp_degree=1)
    assert not merged["round"]["validity"]["valid"]
    assert any(r.startswith("ranks_out_of_step") for r in merged["round"]["validity"]["reasons"])


def test_rank_results_keep_each_ranks_own_samples_and_step():
    per_round = [[_out([1.0, 1.0]), _out([2.0, 2.0])], [_out([3.0, 3.0]), _out([2.0, 4.0])]]
    places = [{"rank": k, "local_rank": k, "host": "h", "device": "cpu"} for k in range(2)]
    ranks = rank_results(per_round, places)
    assert ranks[0]["samples_s"] == [[1.0, 1.0], [3.0, 3.0]] and ranks[0]["step_s"] == pytest.approx(2.0)
    assert ranks[1]["round_means_s"] == [2.0, 3.0] and ranks[1]["step_s"] == pytest.approx(2.5)


def _report(rank, exc, oom=None):
    try:
        raise exc
    except Exception as caught:
        return failure_report(rank, "cfg", caught, oom)


def test_verdict_puts_a_ranks_own_failure_before_its_peers_complaints():
    reports = [_report(0, RuntimeError("Connection closed by peer [127.0.0.1]:1")),
               _report(1, RuntimeError("CUDA out of memory"), oom="out of memory")]
    status, reasons, ranks = verdict(reports, 2)
    assert status == "oom" and ranks == [1] and reasons[0].startswith("rank 1:")


def test_verdict_names_the_rank_that_died_without_a_report():
    status, reasons, ranks = verdict([_report(0, RuntimeError("Connection closed by peer"))], 3)
    assert status == "error" and ranks == [1, 2] and "rank(s) 1, 2 stopped without a report" in reasons[0]


def test_verdict_of_a_collective_timeout():
    reports = [_report(0, RuntimeError("Timed out waiting 1800000ms")), _report(1, RuntimeError("timed out"))]
    assert verdict(reports, 2)[0] == "timeout"


def test_lockstep_stops_every_rank_when_a_peer_hits_a_cap():
    calls = []

    def peer_capped(satisfied, cap):  # one call ends the (empty) warm-up; the peer hits max_iters at 3 samples
        calls.append(satisfied)
        return False, ("max_iters" if len(calls) > 4 else cap)

    with lockstep(peer_capped):
        m = measure(lambda: None, Knobs(warmup_iters=0, min_iters=10, min_time_s=0.0, max_time_s=10.0))
    assert m.n_samples == 3 and m.stop == "max_iters" and not m.validity.valid


def test_lockstep_keeps_a_satisfied_rank_sampling_until_every_rank_is():
    seen = []

    def peer_slower(satisfied, cap):
        seen.append(satisfied)
        return len(seen) > 12, cap  # the peers are satisfied only later

    with lockstep(peer_slower):
        m = measure(lambda: None, Knobs(warmup_iters=0, min_iters=3, min_time_s=0.0, max_time_s=10.0))
    assert m.n_samples > 3 and m.stop == "minimums" and m.validity.valid


def test_torchrun_env_reads_the_launchers_variables():
    env = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "x"}
    assert torchrun_env(env) == {"rank": 3, "world_size": 8, "local_rank": 1, "local_world_size": 4, "nnodes": 2,
                                 "launcher": "torchrun"}
    assert torchrun_env({}) is None


def test_plan_with_a_parallelism_puts_the_one_device_baseline_first():
    spec = BenchSpec(models=("tiny",), phases=("train",), batch_sizes=(1, 2), parallel="ddp")
    configs = plan(spec, "cpu", "cpu", world_size=2)
    assert [(c.get("parallel", "none"), c["batch_size"]) for c in configs] == [
        ("none", 1), ("none", 2), ("ddp", 1), ("ddp", 2)]
    assert configs[2]["world_size"] == 2 and configs[0]["config_id"] != configs[2]["config_id"]
    assert len(plan(BenchSpec(models=("tiny",), phases=("train",), parallel="ddp", baseline=False), "cpu", "cpu", 2)) == 1
    with pytest.raises(UserError, match="needs several ranks"):
        plan(spec, "cpu", "cpu", world_size=1)


def test_spec_refuses_what_a_parallelism_does_not_measure():
    with pytest.raises(UserError, match="ddp measures train"):
        BenchSpec(models=("tiny",), phases=("decode",), parallel="ddp")
    with pytest.raises(UserError, match="tensor parallelism is measured for inference"):
        BenchSpec(models=("tiny",), phases=("train",), parallel="tp")
    with pytest.raises(UserError, match="do not split evenly"):
        heads = load_model_shape("tiny").num_key_value_heads
        plan(BenchSpec(models=("tiny",), phases=("prefill",), parallel="tp"), "cpu", "cpu", world_size=heads + 1)


# --------------------------------------------------------------------------------- real torchrun jobs (2 ranks)

def _bench(tmp_path, *args, env=None, timeout=240):
    cmd = [sys.executable, "-m", "llmecon", "bench", "--model", "tiny", "--seq-len", "32", "--out", str(tmp_path),
           "--rounds", "1", "--min-iters", "3", "--min-time", "0", "--precision", "0", "--warmup", "1",
           "--quiet", *args]
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=timeout)
    runs = sorted((tmp_path / "runs").glob("*"))
    records = {}
    for run in runs:
        for path in record_files(run):
            rec = read_record(path)
            records[(rec.config.parallel, rec.config.batch_size, rec.config.phase)] = rec
    return proc, runs, records


@pytest.mark.slow
def test_ddp_records_gather_every_rank_and_a_killed_rank_ends_its_configuration_with_a_status(tmp_path):
    from llmecon.records.load import load_results

    proc, runs, records = _bench(tmp_path, "--phase", "train", "--batch-size", "1,2,4", "--parallel", "ddp",
                                 "--nproc", "2", env={"LLMECON_FAULT_CRASH_BATCH": "2", "LLMECON_FAULT_RANK": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = records[("ddp", 1, "train")]
    assert rec.status == "ok" and rec.config.world_size == 2
    d = rec.distributed
    assert (d.world_size, d.nnodes, d.backend, d.global_batch_size) == (2, 1, "gloo", 2)
    assert rec.work.tokens_per_step == 2 * 1 * 32
    # the gathered record is the per-rank ones: each sample the slowest rank's
    for i, rnd in enumerate(rec.timing.rounds):
        per_rank = [r.samples_s[i] for r in d.ranks]
        assert rnd.samples_s == [max(s) for s in zip(*per_rank)]
    assert d.slowest_rank == max(d.ranks, key=lambda r: r.step_s).rank
    # torch's own collectives, counted on one step, against a hand count: every fp32 gradient all-reduced once
    params = load_model_shape("tiny").params_total
    assert d.comm_counted["all_reduce"].bytes == params * 4
    assert d.comm_counted["all_reduce"].bytes == step_bytes(load_model_shape("tiny"), "ddp", batch_size=1, seq_len=32,
                                                            dtype="fp32")["all_reduce"]
    run = json.loads((runs[0] / "run.json").read_text())
    inter = run["distributed"]["interconnect"]
    assert {c["op"] for c in inter["collectives"]} == {"all_reduce", "all_gather"}
    frame = load_results(runs).frame
    row = frame[(frame.parallel == "ddp") & (frame.batch_size == 1)].iloc[0]
    assert row.scaling_baseline == "same run" and row.scaling_efficiency > 0 and row.allreduce_busbw_bytes_per_s > 0
    # rank 1 dies in batch 2 (os._exit, no report): a status naming it, not a hang; the sweep goes on in a new job
    died = records[("ddp", 2, "train")]
    assert died.status == "error" and died.distributed.failed_ranks == [1]
    assert "rank(s) 1 stopped without a report" in died.reasons[0]
    assert records[("ddp", 4, "train")].status == "ok"
    assert records[("none", 2, "train")].status == "ok"  # the baseline ran on rank 0 alone: no fault planted there


@pytest.mark.slow
def test_fsdp_records_and_an_oom_on_one_rank(tmp_path):
    proc, _, records = _bench(tmp_path, "--phase", "train", "--batch-size", "1,2,4", "--parallel", "fsdp",
                              "--nproc", "2", "--no-baseline", "--dtype", "bf16",
                              env={"LLMECON_FAULT_OOM_BATCH": "2", "LLMECON_FAULT_RANK": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ok, oom, skipped = records[("fsdp", 1, "train")], records[("fsdp", 2, "train")], records[("fsdp", 4, "train")]
    assert ok.status == "ok" and ok.distributed.wrapping.startswith("FSDP2 fully_shard")
    shape = load_model_shape("tiny")
    counted = {op: c.bytes for op, c in ok.distributed.comm_counted.items()}
    assert counted["reduce_scatter"] == shape.params_total * 4   # every fp32 gradient, reduce-scattered once
    assert counted["all_gather"] > shape.params_total * 2        # bf16: forward, and the layers again in backward
    # torch's collectives, counted, are the cost model's bytes for the step
    assert counted == step_bytes(shape, "fsdp", batch_size=1, seq_len=32, dtype="bf16")
    assert oom.status == "oom" and oom.distributed.failed_ranks == [1] and oom.reasons[0].startswith("rank 1:")
    assert skipped.status == "skipped" and "larger_than_oom_batch" in skipped.reasons[0]


@pytest.mark.slow
def test_a_hung_rank_ends_its_configuration_as_a_timeout(tmp_path):
    proc, _, records = _bench(tmp_path, "--phase", "train", "--batch-size", "2", "--parallel", "ddp", "--nproc", "2",
                              "--no-baseline", "--timeout", "5",
                              env={"LLMECON_FAULT_HANG_BATCH": "2", "LLMECON_FAULT_RANK": "1"}, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = records[("ddp", 2, "train")]
    assert rec.status == "timeout" and "timeout_s=5" in rec.reasons[0]


@pytest.mark.slow
def test_tensor_parallel_prefill_and_decode_by_hand_typed_torchrun(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "llmecon",
           "bench", "--model", "tiny", "--phase", "prefill,decode", "--batch-size", "2", "--seq-len", "32",
           "--new-tokens", "4", "--parallel", "tp", "--no-baseline", "--out", str(tmp_path), "--rounds", "1",
           "--min-iters", "3", "--min-time", "0", "--precision", "0", "--warmup", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("llmecon bench:") == 1  # rank 0 alone prints the table
    recs = [read_record(p) for run in (tmp_path / "runs").glob("*") for p in record_files(run)]
    assert sorted(r.config.phase for r in recs) == ["decode", "prefill"]
    shape = load_model_shape("tiny")
    for rec in recs:
        assert rec.status == "ok" and rec.distributed.parallel == "tp" and rec.distributed.global_batch_size == 2
        assert rec.work.tokens_per_step == (2 * 32 if rec.config.phase == "prefill" else 2)
        if rec.config.phase == "prefill":  # two activation all-reduces per layer: batch x seq x hidden x 4 B each
            expected = 2 * shape.num_hidden_layers * 2 * 32 * shape.hidden_size * 4
            assert rec.distributed.comm_counted["all_reduce"].bytes == expected == step_bytes(
                shape, "tp", batch_size=2, seq_len=32, dtype="fp32", phase="prefill")["all_reduce"]


@pytest.mark.slow
def test_rank_0_failing_alone_in_the_baseline_and_then_in_the_job(tmp_path):
    proc, _, records = _bench(tmp_path, "--phase", "train", "--batch-size", "1,2", "--parallel", "ddp", "--nproc", "2",
                              env={"LLMECON_FAULT_OOM_BATCH": "2", "LLMECON_FAULT_RANK": "0"}, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert records[("none", 1, "train")].status == "ok" and records[("ddp", 1, "train")].status == "ok"
    alone = records[("none", 2, "train")]  # rank 0 alone: recorded, and the sweep goes on to the job
    assert alone.status == "oom" and alone.distributed is None
    spread = records[("ddp", 2, "train")]
    assert spread.status == "oom" and spread.distributed.failed_ranks == [0]
