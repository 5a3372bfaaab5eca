"""Run folders: unique names, atomic writes that survive a kill, concurrent writers, resume bookkeeping, and
finding and listing runs."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from llmecon.errors import UserError
from llmecon.records import store
from llmecon.records.load import load_results
from llmecon.records.schema import SCHEMA_VERSION
from llmecon.records.store import (
    find_runs,
    finished_config_ids,
    list_runs,
    make_config_id,
    new_run,
    open_run,
    write_record,
)


def test_store_new_run_layout_and_meta(tmp_path, plant):
    run_dir = new_run(tmp_path / "out", plant.meta())
    run = json.loads((run_dir / "run.json").read_text())
    assert (run_dir / "records").is_dir() and sorted(os.listdir(run_dir)) == ["records", "run.json"]
    assert run["schema_version"] == SCHEMA_VERSION and run["kind"] == "llmecon-run" and run["run_id"] == run_dir.name
    assert run["created_utc"].endswith("Z") and run["device"]["hardware_id"] == "h200"
    assert open_run(run_dir).model_dump(mode="json") == run


def test_store_new_run_retries_a_taken_id(tmp_path, monkeypatch, plant):
    ids = iter(["20260101T000000Z-aaaaaaaa", "20260101T000000Z-aaaaaaaa", "20260101T000000Z-bbbbbbbb"])
    monkeypatch.setattr(store, "_new_run_id", lambda: next(ids))
    first = new_run(tmp_path, plant.meta())
    second = new_run(tmp_path, plant.meta())
    assert (first.name, second.name) == ("20260101T000000Z-aaaaaaaa", "20260101T000000Z-bbbbbbbb")


def test_store_open_run_refuses_non_runs(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        open_run(tmp_path)
    (tmp_path / "run.json").write_text('{"schema_version": 7}')
    with pytest.raises(UserError, match="newer"):
        open_run(tmp_path)


def _concurrent_writer(out_dir, shared_run, index, barrier, records):
    barrier.wait()  # all start together: same second, same folder
    new_run(out_dir, records["meta"])
    for j, rec in enumerate(records["recs"]):
        write_record(shared_run, {**rec, "config_id": f"p{index}-c{j}"})


@pytest.mark.slow
def test_store_concurrent_writers_never_collide(tmp_path, plant):
    out = tmp_path / "out"
    shared = new_run(out, plant.meta())
    payload = {"meta": plant.meta(), "recs": [plant.record("x", samples=(0.01 + j * 1e-4,) * 3) for j in range(25)]}
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_concurrent_writer, args=(out, shared, i, barrier, payload)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 8
    assert len([d for d in out.iterdir() if d.is_dir()]) == 9  # 8 new runs + the shared one
    files = sorted((shared / "records").iterdir())
    assert len(files) == 200 and all(f.suffix == ".json" for f in files)  # no tmp leftovers
    assert len({json.loads(f.read_text())["config_id"] for f in files}) == 200
    res = load_results(out)
    assert len(res.frame) == 200 and res.problems == []


def test_store_write_record_fills_provenance_and_overwrites_atomically(tmp_path, plant):
    run_dir = plant.run(tmp_path)
    path = write_record(run_dir, plant.record("c1", status="error", reasons=["RuntimeError: boom"]))
    assert path == run_dir / "records" / "c1.json"
    rec = json.loads(path.read_text())
    assert rec["schema_version"] == SCHEMA_VERSION and rec["run_id"] == run_dir.name and rec["created_utc"]
    assert rec["reasons"] == ["RuntimeError: boom"]
    assert finished_config_ids(run_dir) == set()  # error is retried by --resume
    write_record(run_dir, plant.record("c1"))
    assert json.loads(path.read_text())["status"] == "ok"
    assert finished_config_ids(run_dir) == {"c1"}
    assert os.listdir(path.parent) == ["c1.json"]


@pytest.mark.parametrize("status, final", [("ok", True), ("invalid", True), ("oom", True), ("skipped", True),
                                           ("error", False), ("timeout", False), ("interrupted", False)])
def test_store_final_statuses(tmp_path, plant, status, final):
    run_dir = plant.run(tmp_path, [plant.record("c1", status=status)])
    assert finished_config_ids(run_dir) == ({"c1"} if final else set())


def test_store_write_record_refuses_bad_ids_and_statuses(tmp_path, plant):
    run_dir = plant.run(tmp_path)
    for bad in ("../evil", ".hidden", "", "a/b", None):
        with pytest.raises(ValueError, match="config_id"):
            write_record(run_dir, {**plant.record("c1"), "config_id": bad})
    with pytest.raises(ValueError, match="status"):
        write_record(run_dir, plant.record("c1", status="great"))


def test_store_non_finite_values_become_null_with_a_reason(tmp_path, plant):
    rec = plant.record("c1", samples=(0.01, float("nan"), 0.01, float("inf")))
    rec["memory"] = {"peak_bytes": np.int64(7), "peak_reserved_bytes": np.float64(np.inf)}
    run_dir = plant.run(tmp_path, [rec])
    text = (run_dir / "records" / "c1.json").read_text()
    rec = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert rec["timing"]["rounds"][0]["samples_s"] == [0.01, None, 0.01, None]
    assert rec["memory"]["peak_bytes"] == 7 and rec["memory"]["peak_reserved_bytes"] is None
    assert rec["nonfinite_fields"][:2] == ["timing.rounds[0].samples_s[1]=nan", "timing.rounds[0].samples_s[3]=inf"]
    assert "memory.peak_reserved_bytes=inf" in rec["nonfinite_fields"]
    frame = load_results(run_dir).frame
    assert frame.loc[0, "status"] == "invalid" and "non_finite_sample" in frame.loc[0, "reason"]


def test_store_numpy_arrays_become_lists_with_their_non_finite_values_noted(tmp_path, plant):
    rec = plant.record("c1", phase="decode", tokens=1, samples=(0.01,) * 4)
    rec["timing"]["rounds"][0]["samples_s"] = np.array([0.01, 0.01, np.inf, 0.01])
    rec["timing"]["rounds"][0]["context_positions"] = np.arange(512, 516)
    rec["memory"] = {"peak_bytes": np.float32(2.5)}
    path = write_record(plant.run(tmp_path), rec)
    doc = json.loads(path.read_text())
    assert doc["timing"]["rounds"][0]["samples_s"] == [0.01, 0.01, None, 0.01]
    assert doc["timing"]["rounds"][0]["context_positions"] == [512, 513, 514, 515] and doc["memory"]["peak_bytes"] == 2.5
    assert doc["nonfinite_fields"] == ["timing.rounds[0].samples_s[2]=inf"]


def test_store_malformed_record_is_a_value_error_and_no_file(tmp_path, plant):
    run_dir = plant.run(tmp_path)
    with pytest.raises(ValueError, match="malformed record: .*unexpected"):
        write_record(run_dir, {**plant.record("c1"), "unexpected": 1})      # extra fields are forbidden
    assert os.listdir(run_dir / "records") == []


def test_store_unreadable_record_is_not_final(tmp_path, plant):
    """--resume reruns a configuration whose record cannot be read, and overwrites it."""
    run_dir = plant.run(tmp_path, [plant.record("c1"), plant.record("c2")])
    (run_dir / "records" / "c2.json").write_text('{"truncated')
    (run_dir / "records" / ".c3.json.x.tmp").write_text("{")
    assert finished_config_ids(run_dir) == {"c1"}
    assert [p.name for p in store.record_files(run_dir)] == ["c1.json", "c2.json"]   # no leftovers
    write_record(run_dir, plant.record("c2"))
    assert finished_config_ids(run_dir) == {"c1", "c2"}


CHILD = r"""
import json, os, sys, time
from llmecon.records.store import write_record

def stuck(fd):  # the writer dies after half of the bytes reached the tmp file
    os.ftruncate(fd, os.fstat(fd).st_size // 2)
    print("ready", flush=True)
    time.sleep(60)

os.fsync = stuck
write_record(sys.argv[1], json.loads(sys.stdin.read()))
"""


def _kill_mid_write(run_dir, rec):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        child.stdin.write(json.dumps(rec))
        child.stdin.close()
        assert child.stdout.readline().strip() == "ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("previous", [False, True])
def test_store_writer_killed_mid_write_leaves_old_file_or_none(tmp_path, plant, previous):
    earlier = [plant.record("c1", samples=(0.02,) * 5)] if previous else []
    run_dir = plant.run(tmp_path, [plant.record("c2")] + earlier)
    before = (run_dir / "records" / "c1.json").read_bytes() if previous else None
    _kill_mid_write(run_dir, plant.record("c1", samples=(0.05,) * 50))
    names = sorted(os.listdir(run_dir / "records"))
    leftovers = [n for n in names if n.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".c1.json.")
    if previous:
        assert (run_dir / "records" / "c1.json").read_bytes() == before
    else:
        assert "c1.json" not in names
    res = load_results(run_dir)
    assert res.problems == [] and len(res.frame) == (2 if previous else 1)
    assert finished_config_ids(run_dir) == ({"c1", "c2"} if previous else {"c2"})


def test_store_make_config_id_is_deterministic_and_safe():
    cfg = {"model": "/models/Llama 3/config.json", "phase": "decode", "dtype": "bf16", "batch_size": 8,
           "seq_len": 512, "new_tokens": 16}
    a = make_config_id(cfg, "Llama 3")
    assert a == make_config_id(dict(reversed(list(cfg.items()))), "Llama 3")
    assert a.startswith("decode-Llama-3-bf16-b8-s512-n16-") and store._CONFIG_ID.match(a)
    assert make_config_id({**cfg, "compile": True}, "Llama 3") != a
    assert store._CONFIG_ID.match(make_config_id(cfg))      # without a name: the path, made file-name safe


def test_store_find_runs_looks_in_the_runs_folder(tmp_path, plant):
    direct = plant.run(tmp_path / "out")
    nested = plant.run(tmp_path / "out" / "runs")
    (tmp_path / "out" / "notes").mkdir()                     # not a run: neither run.json nor records/
    assert find_runs(tmp_path / "out") == sorted([direct, nested], key=lambda p: (p.name, str(p)))
    assert find_runs(direct) == [direct]
    assert find_runs(tmp_path / "out" / "runs") == [nested]
    assert find_runs(tmp_path / "out" / "notes") == []


def test_store_list_runs_counts_and_names_problems(tmp_path, plant):
    run_dir = plant.run(tmp_path / "out" / "runs", [plant.record("c1"), plant.record("c2", status="oom")])
    (run_dir / "records" / "bad.json").write_text("{")
    (summary,) = list_runs(tmp_path / "out")
    assert (summary["ok"], summary["total"], summary["models"], summary["device"]) == (1, 3, ["tiny"], "NVIDIA H200")
    assert len(summary["problems"]) == 1 and "bad.json" in summary["problems"][0]
    with pytest.raises(UserError, match="no such results folder"):
        list_runs(tmp_path / "nowhere")
