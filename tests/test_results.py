"""Record store and loader: atomic and unique writes, redaction, lenient loading, derived columns."""

import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from results_fixtures import make_record, make_run, run_meta

from llmecon import results
from llmecon.costmodel.flops import CONVENTIONS
from llmecon.errors import UserError
from llmecon.results import (
    SCHEMA_VERSION, columns, environment, finished_config_ids, load_results, make_config_id, new_run, open_run,
    redact, write_record,
)  # fmt: skip

H200_BF16 = 989e12  # the sheet's dense bf16 peak (hardware-and-prices.md)


def contract_columns():
    base = ["run_id", "config_id", "model", "hardware_id", "device_name", "dtype", "phase", "status", "reason",
            "batch_size", "seq_len", "new_tokens", "step_time_s", "step_time_iqr_s", "n_samples",
            "tokens_per_step", "tokens_per_s", "bytes_per_step", "peak_flops_per_s", "ceiling_flops_per_s",
            "peak_bytes_per_s", "ceiling_bytes_per_s", "bytes_per_s", "bandwidth_util",
            "bandwidth_util_vs_ceiling", "peak_memory_bytes", "energy_j_per_token", "mean_power_w", "valid"]  # fmt: skip
    for c in CONVENTIONS:
        base += [f"flops_per_step_{c}", f"achieved_flops_per_s_{c}", f"mfu_{c}", f"mfu_{c}_vs_ceiling"]
    return base


# ------------------------------------------------------------------------------------ run folders


def test_new_run_layout_and_meta(tmp_path):
    run_dir = new_run(tmp_path / "out", run_meta())
    run = json.loads((run_dir / "run.json").read_text())
    assert (run_dir / "records").is_dir()
    assert run["schema_version"] == SCHEMA_VERSION and run["run_id"] == run_dir.name
    assert run["created_utc"].endswith("Z") and run["device"]["hardware_id"] == "h200"
    assert open_run(run_dir) == run
    assert sorted(os.listdir(run_dir)) == ["records", "run.json"]


def test_new_run_retries_a_taken_id(tmp_path, monkeypatch):
    ids = iter(["20260101T000000Z-aaaaaaaa", "20260101T000000Z-aaaaaaaa", "20260101T000000Z-bbbbbbbb"])
    monkeypatch.setattr(results, "_new_run_id", lambda: next(ids))
    first = new_run(tmp_path, run_meta())
    second = new_run(tmp_path, run_meta())
    assert (first.name, second.name) == ("20260101T000000Z-aaaaaaaa", "20260101T000000Z-bbbbbbbb")


def test_open_run_refuses_non_runs(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        open_run(tmp_path)
    (tmp_path / "run.json").write_text('{"schema_version": 7}')
    with pytest.raises(UserError, match="newer"):
        open_run(tmp_path)


def _concurrent_writer(out_dir, shared_run, index, barrier):
    barrier.wait()  # all start together: same second, same folder
    new_run(out_dir, run_meta())
    for j in range(25):
        write_record(shared_run, make_record(f"p{index}-c{j}", samples=(0.01 + index * 1e-4,) * 3))


def test_concurrent_writers_never_collide(tmp_path):
    out = tmp_path / "out"
    shared = new_run(out, run_meta())
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_concurrent_writer, args=(out, shared, i, barrier)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 8
    assert len([d for d in out.iterdir() if d.is_dir()]) == 9  # 8 new runs + the shared one
    files = sorted((shared / "records").iterdir())
    assert len(files) == 200 and all(f.suffix == ".json" for f in files)  # no tmp leftovers
    ids = {json.loads(f.read_text())["config_id"] for f in files}
    assert len(ids) == 200
    frame, problems = load_results(out)
    assert len(frame) == 200 and problems == []


# ------------------------------------------------------------------------------------ writing


def test_write_record_fills_provenance_and_overwrites_atomically(tmp_path):
    run_dir = make_run(tmp_path)
    path = write_record(run_dir, make_record("c1", status="error", reason="RuntimeError: boom"))
    assert path == run_dir / "records" / "c1.json"
    rec = json.loads(path.read_text())
    assert rec["schema_version"] == SCHEMA_VERSION and rec["run_id"] == run_dir.name and rec["created_utc"]
    assert finished_config_ids(run_dir) == set()  # error is retried by --resume
    write_record(run_dir, make_record("c1"))
    assert json.loads(path.read_text())["status"] == "ok"
    assert finished_config_ids(run_dir) == {"c1"}
    assert os.listdir(path.parent) == ["c1.json"]


@pytest.mark.parametrize("status, final", [("ok", True), ("invalid", True), ("oom", True), ("skipped", True),
                                           ("error", False), ("timeout", False), ("interrupted", False)])  # fmt: skip
def test_final_statuses(tmp_path, status, final):
    run_dir = make_run(tmp_path, [make_record("c1", status=status)])
    assert finished_config_ids(run_dir) == ({"c1"} if final else set())


def test_write_record_refuses_bad_ids_and_statuses(tmp_path):
    run_dir = make_run(tmp_path)
    for bad in ("../evil", ".hidden", "", "a/b", None):
        with pytest.raises(ValueError):
            write_record(run_dir, make_record(bad))
    with pytest.raises(ValueError):
        write_record(run_dir, make_record("c1", status="great"))


def test_non_finite_values_become_null_with_a_reason(tmp_path):
    import numpy as np

    rec = make_record("c1", samples=(0.01, math.nan, 0.01, math.inf))
    rec["memory"] = {"peak_bytes": np.int64(7), "by_step": np.array([1.0, np.inf])}
    run_dir = make_run(tmp_path, [rec])
    text = (run_dir / "records" / "c1.json").read_text()
    rec = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert rec["timing"]["samples_s"] == [0.01, None, 0.01, None]
    assert rec["memory"] == {"peak_bytes": 7, "by_step": [1.0, None]}
    assert rec["nonfinite_fields"][:2] == ["timing.samples_s[1]=nan", "timing.samples_s[3]=inf"]
    assert "memory.by_step[1]=inf" in rec["nonfinite_fields"]
    frame, _ = load_results(run_dir)
    assert frame.loc[0, "status"] == "invalid" and "non_finite_sample" in frame.loc[0, "reason"]


CHILD = r"""
import os, sys, time
from llmecon import results

def stuck(fd):  # the writer dies after half of the bytes reached the tmp file
    os.ftruncate(fd, os.fstat(fd).st_size // 2)
    print("ready", flush=True)
    time.sleep(60)

os.fsync = stuck
rec = {"config_id": "c1", "status": "ok", "config": {"model": "tiny"}, "marker": "new " * 500}
results.write_record(sys.argv[1], rec)
"""


def _kill_mid_write(run_dir):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("previous", [False, True])
def test_writer_killed_mid_write_leaves_old_file_or_none(tmp_path, previous):
    run_dir = make_run(tmp_path, [make_record("c2")] + ([make_record("c1", samples=(0.02,) * 5)] if previous else []))
    before = (run_dir / "records" / "c1.json").read_bytes() if previous else None
    _kill_mid_write(run_dir)
    names = sorted(os.listdir(run_dir / "records"))
    leftovers = [n for n in names if n.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".c1.json.")
    if previous:
        assert (run_dir / "records" / "c1.json").read_bytes() == before
    else:
        assert "c1.json" not in names
    frame, problems = load_results(run_dir)
    assert problems == [] and len(frame) == (2 if previous else 1)
    assert finished_config_ids(run_dir) == ({"c1", "c2"} if previous else {"c2"})


# ------------------------------------------------------------------------------------ redaction


def test_secrets_reach_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "s3cr3t-value-from-env")
    meta = run_meta()
    meta["config"] = {"hf_token": "hf_secret123", "env": {"HF_TOKEN": "hf_secret123", "OPENAI_API_KEY": "sk-abc",
                      "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI", "DB_PASSWORD": "hunter22"},
                      "argv": ["llmecon", "bench", "--token", "hf_secret123"]}  # fmt: skip
    run_dir = new_run(tmp_path, meta)
    rec = make_record("c1", status="error", reason="401 for token hf_secret123 (env s3cr3t-value-from-env)")
    rec["config"]["hf_token"] = "hf_secret123"
    write_record(run_dir, rec)
    for path in [run_dir / "run.json", run_dir / "records" / "c1.json"]:
        text = path.read_text()
        for secret in ("hf_secret123", "s3cr3t-value-from-env", "sk-abc", "wJalrXUtnFEMI", "hunter22"):
            assert secret not in text, (path.name, secret)
    assert json.loads((run_dir / "run.json").read_text())["config"]["hf_token"] == "<redacted>"


def test_redact_keeps_ordinary_fields():
    clean = {"new_tokens": 16, "tokens_per_step": 512, "pad_token_id": 0, "num_key_value_heads": 8,
             "keys": ["a"], "hf_config": {"model_type": "llama"}, "path": "/data/hf_models/x"}  # fmt: skip
    assert redact(clean) == clean
    assert redact({"Authorization": "Bearer x", "hf_token": None}) == {"Authorization": "<redacted>", "hf_token": None}


# ------------------------------------------------------------------------------------ loading


def test_bad_files_are_named_and_the_rest_loads(tmp_path):
    run_dir = make_run(tmp_path, [make_record("good")])
    rec_dir = run_dir / "records"
    (rec_dir / "corrupt.json").write_text("{not json at all")
    (rec_dir / "truncated.json").write_text(json.dumps(make_record("truncated"))[:120])
    future = make_record("future")
    future["schema_version"] = 99
    future["run_id"] = run_dir.name
    (rec_dir / "future.json").write_text(json.dumps(future))
    missing = json.loads((rec_dir / "good.json").read_text())
    del missing["status"]
    (rec_dir / "missing.json").write_text(json.dumps(missing))
    (rec_dir / "nan.json").write_text((rec_dir / "good.json").read_text().replace("0.01", "NaN", 1))
    (rec_dir / ".good.json.abc.tmp").write_text("{half")
    (rec_dir / "leftover.json.tmp").write_text("{half")

    frame, problems = load_results(run_dir)
    assert list(frame["config_id"]) == ["good"]
    named = {Path(p.split(": ")[0]).name: p for p in problems}
    assert set(named) == {"corrupt.json", "truncated.json", "future.json", "missing.json", "nan.json"}
    assert "upgrade llmecon" in named["future.json"]
    assert "missing key status" in named["missing.json"]
    assert "NaN" in named["nan.json"]
    with pytest.raises(UserError, match=r"corrupt\.json"):
        load_results(run_dir, strict=True)


def test_missing_or_newer_run_json(tmp_path):
    run_dir = make_run(tmp_path / "a", [make_record("c1")])
    (run_dir / "run.json").unlink()
    frame, problems = load_results(run_dir)
    assert len(frame) == 1
    assert problems == [f"{run_dir / 'run.json'}: missing run.json; device and ceilings unknown (no MFU)"]
    assert math.isnan(frame.loc[0, "mfu_executed"]) and frame.loc[0, "hardware_id"] is None

    newer = make_run(tmp_path / "b", [make_record("c1")])
    (newer / "run.json").write_text(json.dumps({"schema_version": 2}))
    with pytest.raises(UserError, match="no results in"):
        load_results(newer)


def test_paths_that_hold_nothing(tmp_path):
    with pytest.raises(UserError, match="no such results folder: .*nowhere"):
        load_results(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no results in"):
        load_results(tmp_path)
    run_dir = make_run(tmp_path / "out")
    (run_dir / "records" / ".x.json.1.tmp").write_text("{")
    with pytest.raises(UserError, match="no results in"):
        load_results(tmp_path / "out")
    # every record bad: the one-line error still names a file and why (no warnings get printed then)
    (run_dir / "records" / "c1.json").write_text('{"truncated')
    with pytest.raises(UserError, match=r"no results in .*1 unreadable file.*first: .*c1\.json: unreadable JSON"):
        load_results(tmp_path / "out")


def test_folder_of_runs_and_several_paths(tmp_path):
    a = make_run(tmp_path / "out", [make_record("c1"), make_record("c2", batch_size=8)])
    b = make_run(tmp_path / "out", [make_record("c1")], hardware_id="a100-sxm4-80gb")
    frame, problems = load_results(tmp_path / "out")
    assert problems == [] and len(frame) == 3
    assert set(frame["run_id"]) == {a.name, b.name}
    again, _ = load_results([a, b / "run.json"])
    assert len(again) == 3


# ------------------------------------------------------------------------------------ derived columns


def test_columns_and_derived_numbers(tmp_path):
    run_dir = make_run(tmp_path, [make_record("c1", samples=[0.01] * 9 + [0.02], energy_j=50.0)])
    frame, _ = load_results(run_dir)
    assert list(frame.columns) == columns()
    assert set(contract_columns()) <= set(frame.columns)
    row = frame.iloc[0]
    assert row["status"] == "ok" and row["valid"] and row["reason"] is None
    assert row["step_time_s"] == 0.01 and row["n_samples"] == 10
    assert row["tokens_per_s"] == pytest.approx(512 / 0.01)
    assert row["peak_flops_per_s"] == H200_BF16 and row["ceiling_flops_per_s"] == 8e14
    assert row["achieved_flops_per_s_executed"] == pytest.approx(1e14)
    assert row["mfu_executed"] == pytest.approx(1e14 / H200_BF16)
    assert row["mfu_article_vs_ceiling"] == pytest.approx(0.125)
    assert row["energy_j_per_token"] == pytest.approx(50.0 / (512 * 10))
    assert math.isnan(row["bytes_per_step"]) and math.isnan(row["bandwidth_util"])  # prefill
    assert frame["batch_size"].dtype == "Int64" and frame["mfu_executed"].dtype == float


def test_corrected_peak_re_derives_old_runs(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path, [make_record("c1")])
    before, _ = load_results(run_dir)

    class Corrected:  # the sheet, after someone fixed the H200's bf16 peak
        id = "h200"
        memory_bytes_per_s = 4.8e12

        def peak(self, dtype):
            return {"bf16": 2e14}.get(dtype)

    monkeypatch.setattr(results, "_lookup_accelerator", lambda hw: Corrected())
    after, _ = load_results(run_dir)
    assert before.loc[0, "mfu_executed"] == pytest.approx(1e14 / H200_BF16)
    assert after.loc[0, "mfu_executed"] == pytest.approx(0.5)
    assert after.loc[0, "mfu_executed_vs_ceiling"] == before.loc[0, "mfu_executed_vs_ceiling"]


def test_impossible_mfu_is_invalid(tmp_path):
    flops = {c: 1.2e13 for c in CONVENTIONS}  # 1.2e15 FLOP/s on a 989 TFLOP/s chip
    too_fast = make_record("too-fast", flops=flops, samples=(0.01,) * 10)
    over_ceiling = make_record("over-ceiling", flops=9e12)  # 9e14 > measured 8e14, < datasheet
    frame, _ = load_results(make_run(tmp_path, [too_fast, over_ceiling]))
    rows = frame.set_index("config_id")
    assert rows.loc["too-fast", "status"] == "invalid" and not rows.loc["too-fast", "valid"]
    assert "mfu_executed_out_of_range (1.21)" in rows.loc["too-fast", "reason"]
    assert rows.loc["too-fast", "mfu_executed"] == pytest.approx(1.2e15 / H200_BF16)  # kept, flagged
    assert "mfu_executed_vs_ceiling_out_of_range" in rows.loc["over-ceiling", "reason"]
    assert not rows.loc["over-ceiling", "valid"]


def test_article_convention_above_one_is_not_a_verdict(tmp_path):
    flops = {"article": 2e13, "non_embedding": 5e12, "causal": 4e12, "executed": 5e12}
    frame, _ = load_results(make_run(tmp_path, [make_record("c1", flops=flops)]))
    assert frame.loc[0, "mfu_article"] > 1 and bool(frame.loc[0, "valid"])


def test_unknown_peaks_give_null_with_a_reason(tmp_path):
    unknown = make_run(tmp_path / "a", [make_record("c1")], hardware_id=None)
    no_fp8 = make_run(tmp_path / "b", [make_record("c1", dtype="fp8")], hardware_id="a100-sxm4-80gb")
    not_in_sheet = make_run(tmp_path / "c", [make_record("c1")], hardware_id="foo-x1")
    frame, _ = load_results([unknown, no_fp8, not_in_sheet])
    assert frame["mfu_executed"].isna().all() and frame["peak_flops_per_s"].isna().all()
    assert list(frame["peak_reason"]) == [
        "no sheet entry for 'Foo X1'", "no dense fp8 peak for a100-sxm4-80gb in the hardware sheet",
        frame.loc[2, "peak_reason"]]  # fmt: skip
    assert "foo-x1" in frame.loc[2, "peak_reason"]
    assert frame["valid"].all()  # no MFU is not an invalid measurement
    assert frame.loc[0, "mfu_executed_vs_ceiling"] == pytest.approx(0.125)


def test_fp32_uses_the_fp32_peak(tmp_path):
    ceilings = {"fp32": {"gemm_flops_per_s": 5e13, "copy_bytes_per_s": 3e12}}
    frame, _ = load_results(make_run(tmp_path, [make_record("c1", dtype="fp32", flops=3e11)], ceilings=ceilings))
    assert frame.loc[0, "peak_flops_per_s"] == 67e12  # not the 494.5 TFLOP/s tf32 figure
    assert frame.loc[0, "mfu_executed"] == pytest.approx(3e13 / 67e12)


def test_old_record_without_full_model_scales_everything_by_layer_scale(tmp_path):
    whole = make_record("whole", samples=(0.01,) * 10)
    part = make_record("part", samples=(0.01,) * 10, layer_scale=4.0, energy_j=10.0)
    frame, problems = load_results(make_run(tmp_path, [whole, part]))
    rows = frame.set_index("config_id")
    assert problems == [] and rows.loc["part", "time_scale"] == 4.0
    assert rows.loc["part", "step_time_s"] == pytest.approx(0.04)
    assert rows.loc["part", "first_call_s"] == pytest.approx(0.5 * 4)
    assert rows.loc["part", "flops_per_step_executed"] == pytest.approx(4e12)
    assert rows.loc["part", "tokens_per_s"] == pytest.approx(rows.loc["whole", "tokens_per_s"] / 4)
    assert rows.loc["part", "mfu_executed"] == pytest.approx(rows.loc["whole", "mfu_executed"])
    assert rows.loc["part", "energy_j_per_token"] == pytest.approx(10.0 / 5120 * 4)


def test_full_model_work_is_used_as_is_and_time_scales_by_time_scale(tmp_path):
    # 1 of 4 layers built; the full model does 3x the built model's executed FLOPs (the LM head runs once)
    flops = {"article": 2e12, "non_embedding": 1e12, "causal": 0.9e12, "executed": 1e12}
    full = {"article": 8e12, "non_embedding": 3.6e12, "causal": 3.4e12, "executed": 3e12}
    part = make_record("part", samples=(0.01,) * 10, flops=flops, layer_scale=4.0, energy_j=10.0,
                       full_model={"flops_per_step": full, "bytes_per_step": None}, time_scale=3.0)
    dec = make_record("dec", phase="decode", tokens=8, flops=1e10, bytes_step=1e9, samples=(0.001,) * 10,
                      layer_scale=4.0, full_model={"flops_per_step": 3e10, "bytes_per_step": 2.5e9}, time_scale=2.5)
    frame, problems = load_results(make_run(tmp_path, [part, dec]))
    rows = frame.set_index("config_id")
    assert problems == [] and bool(rows.loc["part", "valid"])
    assert rows.loc["part", "layer_scale"] == 4.0 and rows.loc["part", "time_scale"] == 3.0
    for c in CONVENTIONS:
        assert rows.loc["part", f"flops_per_step_{c}"] == full[c]  # exactly the stored full-model count
    assert rows.loc["part", "step_time_s"] == pytest.approx(0.03)  # not 0.04 (L/k)
    assert rows.loc["part", "first_call_s"] == pytest.approx(0.5 * 3)
    assert rows.loc["part", "tokens_per_s"] == pytest.approx(512 / 0.03)
    assert rows.loc["part", "energy_j_per_token"] == pytest.approx(10.0 / 5120 * 3)
    assert rows.loc["part", "mfu_executed"] == pytest.approx(1e12 / 0.01 / H200_BF16)  # the built model's
    assert rows.loc["dec", "bytes_per_step"] == 2.5e9 and rows.loc["dec", "step_time_s"] == pytest.approx(0.0025)
    assert rows.loc["dec", "bandwidth_util"] == pytest.approx(1e9 / 0.001 / 4.8e12)


def test_full_model_without_a_time_scale_is_a_problem(tmp_path):
    bad = make_record("bad", layer_scale=4.0, full_model={"flops_per_step": 3e12})
    frame, problems = load_results(make_run(tmp_path, [make_record("good"), bad]))
    assert list(frame["config_id"]) == ["good"] and frame.loc[0, "time_scale"] == 1.0
    assert len(problems) == 1 and "missing key model.time_scale" in problems[0]


def test_decode_bandwidth(tmp_path):
    ok = make_record("ok", phase="decode", tokens=8, flops=1e10, bytes_step=2e10, samples=(0.01,) * 10)
    impossible = make_record("impossible", phase="decode", tokens=8, flops=1e10, bytes_step=6e10)
    frame, _ = load_results(make_run(tmp_path, [ok, impossible]))
    rows = frame.set_index("config_id")
    assert rows.loc["ok", "bytes_per_s"] == pytest.approx(2e12)
    assert rows.loc["ok", "peak_bytes_per_s"] == 4.8e12 and rows.loc["ok", "ceiling_bytes_per_s"] == 4e12
    assert rows.loc["ok", "bandwidth_util"] == pytest.approx(2e12 / 4.8e12)
    assert rows.loc["ok", "bandwidth_util_vs_ceiling"] == pytest.approx(0.5)
    assert bool(rows.loc["ok", "valid"])
    assert "bandwidth_util_out_of_range" in rows.loc["impossible", "reason"]  # 6 TB/s on a 4.8 TB/s chip


def test_failures_and_invalid_timing_are_rows_without_numbers(tmp_path):
    oom = make_record("oom", status="oom", reason="OutOfMemoryError: CUDA out of memory", samples=())
    short = make_record("short", status="invalid", reason="min_iterations_not_met; min_duration_not_met",
                        samples=(0.01,) * 4,
                        validity={"valid": False, "reasons": ["min_iterations_not_met", "min_duration_not_met"],
                                  "warnings": []})  # fmt: skip
    frame, problems = load_results(make_run(tmp_path, [oom, short]))
    rows = frame.set_index("config_id")
    assert problems == [] and not rows["valid"].any()
    assert rows.loc["oom", "status"] == "oom" and math.isnan(rows.loc["oom", "tokens_per_s"])
    assert rows.loc["short", "reason"] == "min_iterations_not_met; min_duration_not_met"
    assert rows.loc["short", "step_time_s"] == 0.01  # numbers kept for inspection, row invalid


def test_ok_record_with_failed_timing_verdict_is_invalid(tmp_path):
    rec = make_record("c1", samples=[0.009] * 5 + [0.011] * 5,  # IQR/median = 20 %: noisy here too
                      validity={"valid": False, "reasons": ["min_duration_not_met"], "warnings": ["noisy"]})
    frame, _ = load_results(make_run(tmp_path, [rec]))
    assert frame.loc[0, "status"] == "invalid" and frame.loc[0, "reason"] == "min_duration_not_met"
    assert frame.loc[0, "warnings"] == "noisy"


# ------------------------------------------------------------------------------------ helpers


def test_make_config_id_is_deterministic_and_safe():
    cfg = {"model": "/models/Llama 3/config.json", "phase": "decode", "dtype": "bf16", "batch_size": 8,
           "seq_len": 512, "new_tokens": 16}  # fmt: skip
    a = make_config_id(cfg)
    assert a == make_config_id(dict(reversed(list(cfg.items()))))
    assert a.startswith("decode-config.json-bf16-b8-s512-n16-") and results._CONFIG_ID.match(a)
    assert make_config_id({**cfg, "compile": True}) != a


def test_environment_in_and_out_of_a_git_checkout(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "f.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    clean = environment(repo)
    assert len(clean["git_sha"]) == 40 and clean["git_dirty"] is False
    for key in ("python", "torch", "transformers", "cuda", "driver", "platform", "cpu_model"):
        assert key in clean
    assert clean["driver"] is not None or "driver" in clean["unavailable"]
    (repo / "f.py").write_text("x = 2\n")
    dirty = environment(repo)
    assert dirty["git_dirty"] is True
    meta = {**run_meta(), "environment": dirty}
    run_dir = new_run(tmp_path / "out", meta)
    write_record(run_dir, make_record("c1"))
    frame, _ = load_results(run_dir)
    assert frame.loc[0, "warnings"] == "dirty_build" and frame.loc[0, "valid"]
    outside = environment(tmp_path / "nowhere")
    assert outside["git_sha"] is None and "not a git checkout" in outside["unavailable"]["git_sha"]
