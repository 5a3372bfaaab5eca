"""The sweep runner end to end on the CPU (through `llmecon bench`): real tiny models, real worker processes,
real records; planted crashes, hangs and OOMs; Ctrl-C and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.costmodel.flops import decode_flops, prefill_flops, train_step_flops
from llmecon.costmodel.memory import decode_bytes
from llmecon.costmodel.presets import load_model_shape
from llmecon.records.load import load_results
from llmecon.stats import summarize_rounds
from llmecon.vocab import CONVENTIONS

pytestmark = pytest.mark.slow   # real worker processes and models

SRC = str(Path(__file__).resolve().parents[2] / "src")
# one thread: on a small shared CI host two OpenMP threads stall each other (10x slower, noisy)
FAST = ["--min-iters", "3", "--min-time", "0.02", "--max-time", "5", "--warmup", "1", "--quiet", "--threads", "1",
        "--rounds", "2", "--precision", "0"]


# the planted hang's timeout: a 4 s one timed out the OOM configuration's model build on a loaded shared host
PLANTED_TIMEOUT_S = 10


def _records(run_dir: Path) -> dict[str, dict]:
    out = {}
    for p in sorted((run_dir / "records").glob("*.json")):
        rec = json.loads(p.read_text())
        out[rec["config_id"]] = rec
    return out


def _by(records: dict, **match) -> dict:
    hits = [r for r in records.values() if all(r["config"][k] == v for k, v in match.items())]
    assert len(hits) == 1, (match, hits)
    return hits[0]


def test_runner_tiny_on_cpu_all_phases_valid_rows_and_costmodel_flops(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--phase", "prefill,decode,train",
                                       "--batch-size", "1,2", "--seq-len", "32", "--new-tokens", "4",
                                       "--device", "cpu", "--out", str(tmp_path), "--json", *FAST])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    run_dir = Path(payload["run_dir"])
    rows = payload["rows"]
    assert len(rows) == 6 and payload["problems"] == []
    for row in rows:
        assert row["status"] == "ok", row
        assert row["valid"] is True
        assert 0 < row["mfu_executed_vs_ceiling"] <= 1, row
        assert row["tokens_per_s"] > 0
        assert row["mfu_executed"] is None  # a CPU is not in the hardware sheet: no datasheet MFU
    decode = [r for r in rows if r["phase"] == "decode"]
    assert all(0 < r["bandwidth_util_vs_ceiling"] for r in decode)

    run = json.loads((run_dir / "run.json").read_text())
    assert run["device"]["kind"] == "cpu" and run["device"]["hardware_id"] is None
    assert run["device"]["hardware_match_reason"]
    assert run["device"]["torch_threads"] == 1 and run["ceilings"]["fp32"]["torch_threads"] == 1
    assert all(r["torch_threads"] == 1 for r in _records(run_dir).values())
    assert run["ceilings"]["fp32"]["gemm_flops_per_s"] > 1e8
    assert run["ceilings"]["fp32"]["copy_bytes_per_s"] > 1e8

    shape = load_model_shape("tiny")
    records = _records(run_dir)
    for b in (1, 2):
        rec = _by(records, phase="prefill", batch_size=b)
        for c in CONVENTIONS:
            assert rec["work"]["flops_per_step"][c] == pytest.approx(prefill_flops(shape, b, 32, c))
        assert rec["work"]["tokens_per_step"] == b * 32
        rec = _by(records, phase="train", batch_size=b)
        for c in CONVENTIONS:
            assert rec["work"]["flops_per_step"][c] == pytest.approx(train_step_flops(shape, b, 32, c))
        assert rec["timing"]["final_loss"] > 0
        rec = _by(records, phase="decode", batch_size=b)
        for c in CONVENTIONS:
            assert rec["work"]["flops_per_step"][c] == pytest.approx(decode_flops(shape, b, 32, 4, c) / 4)
        assert rec["work"]["bytes_per_step"] == pytest.approx(decode_bytes(shape, "fp32", b, 32, 4) / 4)
        assert rec["work"]["tokens_per_step"] == b
        # two rounds; one sample per decode step, at the context positions 32..35, whole passes
        assert len(rec["timing"]["rounds"]) == 2 and rec["measure"]["rounds"] == 2
        for rnd in rec["timing"]["rounds"]:
            positions = rnd["context_positions"]
            assert len(positions) == rnd["n_samples"] and set(positions) == {32, 33, 34, 35}
            assert rnd["stop"] == "minimums"  # --precision 0
        assert rec["timing"]["spread"] is not None and rec["timing"]["step_s"] > 0
        assert rec["model"]["layer_scale"] == 1.0 and rec["config"]["attn_implementation"] == "sdpa"
        assert rec["model"]["time_scale"] == 1.0
        assert rec["work"]["full_model"]["bytes_per_step"] == rec["work"]["bytes_per_step"]
    # the operator calls of one step, counted once per configuration: a deterministic number per shape
    for rec in records.values():
        ops = rec["work"]["ops"]
        assert ops["aten_ops_per_step"] == sum(ops["aten_op_counts"].values()) > 0 and ops["reason"].startswith("CPU")
    assert _by(records, phase="train", batch_size=1)["work"]["ops"]["aten_op_counts"]["aten.mm"] == \
        _by(records, phase="train", batch_size=2)["work"]["ops"]["aten_op_counts"]["aten.mm"]   # same layers


def test_runner_layers_records_full_model_work_and_scales_time_by_the_work_ratio(tmp_path):
    # tiny: 2 layers, hidden 64, vocab 512: the LM head is a large share, so the work ratio is far from 2
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--layers", "1", "--phase", "prefill,decode,train",
                                       "--batch-size", "1", "--seq-len", "32", "--new-tokens", "4",
                                       "--device", "cpu", "--out", str(tmp_path), "--json", *FAST])
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    full = load_model_shape("tiny")
    built = full.with_layers(1)
    exact = {"prefill": lambda s, c: prefill_flops(s, 1, 32, c), "train": lambda s, c: train_step_flops(s, 1, 32, c),
             "decode": lambda s, c: decode_flops(s, 1, 32, 4, c) / 4}
    res = load_results([run_dir])
    frame, problems = res.frame, res.problems
    assert problems == [] and len(frame) == 3
    records = _records(run_dir)
    for phase, flops in exact.items():
        rec = _by(records, phase=phase)
        assert rec["status"] == "ok", rec["reasons"]
        assert rec["model"]["layer_scale"] == 2.0 and rec["model"]["layers_built"] == 1
        assert rec["work"]["flops_per_step"] == pytest.approx({c: flops(built, c) for c in CONVENTIONS})
        assert rec["work"]["full_model"]["flops_per_step"] == pytest.approx({c: flops(full, c) for c in CONVENTIONS})
        if phase == "decode":
            ratio = decode_bytes(full, "fp32", 1, 32, 4) / decode_bytes(built, "fp32", 1, 32, 4)
            full_bytes = decode_bytes(full, "fp32", 1, 32, 4) / 4
            assert rec["work"]["full_model"]["bytes_per_step"] == pytest.approx(full_bytes)
        else:
            ratio = flops(full, "executed") / flops(built, "executed")
        assert rec["model"]["time_scale"] == pytest.approx(ratio)
        assert ratio < (1.99 if phase == "prefill" else 1.9)  # prefill: the LM head on the last position only
        row = frame.set_index("phase").loc[phase]
        for c in CONVENTIONS:
            assert row[f"flops_per_step_{c}"] == rec["work"]["full_model"]["flops_per_step"][c]
        step = summarize_rounds([r["samples_s"] for r in rec["timing"]["rounds"]])[0]["step_s"]
        assert row["step_time_s"] == pytest.approx(step * ratio)
        assert row["layer_scale"] == 2.0 and row["time_scale"] == pytest.approx(ratio)


def test_runner_planted_crash_timeout_oom_then_skip(tmp_path, monkeypatch):
    # test-only fault hooks, read by the worker: crash at batch 2, hang at 3, OOM from 4 on. Each of them comes
    # in a fresh worker, whose timeout clock includes building the model (2.5-3 s on an idle 2-core host, most of
    # it transformers' lazy imports); the planted crash and OOM must come before the timeout, the hang after it.
    monkeypatch.setenv("LLMECON_FAULT_CRASH_BATCH", "2")
    monkeypatch.setenv("LLMECON_FAULT_HANG_BATCH", "3")
    monkeypatch.setenv("LLMECON_FAULT_OOM_BATCH", "4")
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--phase", "prefill", "--batch-size", "2,3,4,5",
                                       "--seq-len", "16", "--device", "cpu", "--out", str(tmp_path),
                                       "--timeout", str(PLANTED_TIMEOUT_S), *FAST])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    recs = _records(run_dir)
    status = {r["config"]["batch_size"]: (r["status"], "; ".join(r["reasons"])) for r in recs.values()}
    assert status[2][0] == "error" and "code 86" in status[2][1]
    assert status[3][0] == "timeout" and f"timeout_s={PLANTED_TIMEOUT_S}" in status[3][1]
    assert status[4][0] == "oom" and "LLMECON_FAULT_OOM_BATCH" in status[4][1]
    assert status[5][0] == "skipped" and status[5][1].startswith("larger_than_oom_batch")
    res = load_results([run_dir])
    frame = res.frame
    assert res.problems == []
    assert frame.set_index("batch_size").loc[4, "tokens_per_s"] != frame.set_index("batch_size").loc[4, "tokens_per_s"]


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks (/proc/PID/stat), or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _wait_for_the_hang(bench_pid: int, deadline: float, idle_s: float = 1.0) -> None:
    """Return once the bench's worker has used no CPU for ``idle_s`` (the planted hang sleeps; building and
    running train b1 never pauses that long, even with a small share of a loaded host). A fixed sleep was too
    short on a loaded host: train b2 had not started, so only train b1 was recorded as interrupted. Without
    /proc (not Linux) it falls back to a generous sleep."""
    if not Path(f"/proc/{bench_pid}/stat").exists():
        time.sleep(5.0)
        return
    last: dict[int, int] = {}
    quiet_since = None
    while time.monotonic() < deadline:
        ticks = {pid: t for pid in _children(bench_pid) if (t := _cpu_ticks(pid)) is not None}
        now = time.monotonic()
        if ticks and ticks == last:
            quiet_since = quiet_since or now
            if now - quiet_since >= idle_s:
                return
        else:
            quiet_since = None
        last = ticks
        time.sleep(0.1)
    raise AssertionError("the bench's worker never went idle in the planted hang of train b2")


def test_runner_interrupted_run_keeps_finished_records_and_resume_runs_only_the_rest(tmp_path):
    """Prefill finishes (two records); the train configurations interleave their rounds and train b2 hangs in its
    first round: Ctrl-C records both train configurations as interrupted, and --resume runs only those."""
    env = dict(os.environ, PYTHONPATH=SRC, LLMECON_FAULT_HANG_BATCH="train:2")
    cmd = [sys.executable, "-m", "llmecon", "bench", "--model", "tiny", "--phase", "prefill,train", "--batch-size",
           "1,2", "--seq-len", "16", "--device", "cpu", "--out", str(tmp_path), *FAST]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    run_dir = None
    while time.monotonic() < deadline:
        runs = tmp_path / "runs"
        dirs = [p for p in runs.iterdir() if (p / "records").is_dir()] if runs.is_dir() else []
        if dirs and len(list((dirs[0] / "records").glob("*.json"))) >= 2:
            run_dir = dirs[0]
            break
        time.sleep(0.1)
    assert run_dir is not None, proc.communicate(timeout=5)
    assert run_dir.parent == tmp_path / "runs"            # bench --out DIR writes DIR/runs/<run id>
    _wait_for_the_hang(proc.pid, deadline)  # train b1's first round is done, train b2 hangs in the worker
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"--resume" in err
    before = _records(run_dir)
    status = {(r["config"]["phase"], r["config"]["batch_size"]): r["status"] for r in before.values()}
    assert status == {("prefill", 1): "ok", ("prefill", 2): "ok", ("train", 1): "interrupted",
                      ("train", 2): "interrupted"}
    mtimes = {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").glob("*.json")}

    result = CliRunner().invoke(main, ["bench", "--resume", str(run_dir), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    after = _records(run_dir)
    assert set(after) == set(before)  # same config ids
    assert {r["status"] for r in after.values()} == {"ok"}
    for p in (run_dir / "records").glob("*.json"):
        phase = json.loads(p.read_text())["config"]["phase"]
        assert (p.stat().st_mtime_ns == mtimes[p.name]) == (phase == "prefill")  # only train was run again


def test_runner_run_bench_in_process_oom_skips_larger_batches_and_resume_keeps_final_records(tmp_path, monkeypatch):
    """The Python API: out_dir receives the run folder itself (the CLI and llmecon.bench add runs/), on_run_dir
    hears of it before anything runs, an OOM makes the larger batches 'skipped', and --resume reruns nothing
    that has a final status."""
    from llmecon.measure.runner import run_bench
    from llmecon.measure.spec import BenchSpec

    monkeypatch.setenv("LLMECON_FAULT_OOM_BATCH", "2")      # raised in-process before any work: no crash
    spec = BenchSpec(models=("tiny",), phases=("prefill",), batch_sizes=(3, 1, 2), seq_lens=(8,), device="cpu",
                     isolate=False, min_iters=2, min_time_s=0.0, warmup_iters=1, rounds=1, target_rel_ci=0.0)
    announced = []
    run_dir = run_bench(spec, tmp_path / "out", progress=False, on_run_dir=announced.append)
    assert run_dir.parent == tmp_path / "out" and announced == [run_dir]
    recs = _records(run_dir)
    status = {r["config"]["batch_size"]: (r["status"], "; ".join(r["reasons"])) for r in recs.values()}
    assert status[1] == ("ok", "")
    assert status[2][0] == "oom" and "LLMECON_FAULT_OOM_BATCH" in status[2][1]
    assert status[3][0] == "skipped" and status[3][1].startswith("larger_than_oom_batch (batch 2")
    mtimes = {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").glob("*.json")}
    assert run_bench(spec, tmp_path / "elsewhere", resume=run_dir, progress=False) == run_dir
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").glob("*.json")} == mtimes
    assert not (tmp_path / "elsewhere").exists()
