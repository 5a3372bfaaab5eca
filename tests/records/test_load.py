"""The tidy frame: derived numbers from raw samples and the sheets as they are now, physics gates, layer
extrapolation, and files that cannot be used named while the rest loads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from llmecon.errors import UserError
from llmecon.records.load import columns, load_results
from llmecon.records.schema import MIN_ENERGY_WINDOW_S, SCHEMA_VERSION
from llmecon.vocab import CONVENTIONS

H200_BF16 = 989e12  # the hardware sheet's dense bf16 peak of the H200


def contract_columns() -> list[str]:
    """The columns other tools (calibrate, compare, report, notebooks) rely on."""
    base = ["run_id", "config_id", "model", "model_spec", "hardware", "hardware_id", "device_name", "dtype", "phase",
            "status", "reason", "batch_size", "seq_len", "new_tokens", "step_time_s", "step_time_spread", "round_means_s", "n_rounds", "n_samples",
            "tokens_per_step", "tokens_per_s", "bytes_per_step", "peak_flops_per_s", "ceiling_flops_per_s",
            "peak_bytes_per_s", "ceiling_bytes_per_s", "bytes_per_s", "bandwidth_util", "bandwidth_util_vs_ceiling",
            "weight_bytes", "peak_memory_bytes", "energy_j_per_token", "mean_power_w", "aten_ops_per_step",
            "aten_op_counts", "cuda_kernels_per_step", "valid"]
    for c in CONVENTIONS:
        base += [f"flops_per_step_{c}", f"achieved_flops_per_s_{c}", f"mfu_{c}", f"mfu_{c}_vs_ceiling"]
    return base


def test_load_bad_files_are_named_and_the_rest_loads(tmp_path, plant):
    run_dir = plant.run(tmp_path, [plant.record("good")])
    rec_dir = run_dir / "records"
    good = json.loads((rec_dir / "good.json").read_text())
    (rec_dir / "corrupt.json").write_text("{not json at all")
    (rec_dir / "truncated.json").write_text(json.dumps(good)[:120])
    (rec_dir / "future.json").write_text(json.dumps({**good, "schema_version": 99, "config_id": "future"}))
    missing = dict(good)
    del missing["status"]
    (rec_dir / "missing.json").write_text(json.dumps(missing))
    (rec_dir / "typed.json").write_text(json.dumps({**good, "config_id": "typed",
                                                    "config": {**good["config"], "batch_size": "one"}}))
    (rec_dir / "nan.json").write_text((rec_dir / "good.json").read_text().replace("0.01", "NaN", 1))
    (rec_dir / ".good.json.abc.tmp").write_text("{half")
    (rec_dir / "leftover.json.tmp").write_text("{half")

    res = load_results(run_dir)
    assert list(res.frame["config_id"]) == ["good"]
    named = {Path(p.split(": ")[0]).name: p for p in res.problems}
    assert set(named) == {"corrupt.json", "truncated.json", "future.json", "missing.json", "typed.json", "nan.json"}
    assert "upgrade llmecon" in named["future.json"]
    assert "status: Field required" in named["missing.json"]
    assert "config.batch_size: Input should be a valid integer" in named["typed.json"]
    assert "NaN" in named["nan.json"]
    with pytest.raises(UserError, match=r"corrupt\.json"):
        load_results(run_dir, strict=True)


def test_load_missing_or_newer_run_json(tmp_path, plant):
    run_dir = plant.run(tmp_path / "a", [plant.record("c1")])
    (run_dir / "run.json").unlink()
    res = load_results(run_dir)
    assert len(res.frame) == 1
    assert res.problems == [f"{run_dir / 'run.json'}: missing run.json; device and ceilings unknown (no MFU)"]
    assert math.isnan(res.frame.loc[0, "mfu_executed"]) and res.frame.loc[0, "hardware_id"] is None
    newer = plant.run(tmp_path / "b", [plant.record("c1")])
    (newer / "run.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    res = load_results(newer)
    assert "newer than this llmecon reads" in res.problems[0] and math.isnan(res.frame.loc[0, "mfu_executed"])


def test_load_paths_that_hold_nothing(tmp_path, plant):
    with pytest.raises(UserError, match="no such results folder: .*nowhere"):
        load_results(tmp_path / "nowhere")
    empty = load_results(tmp_path)
    assert empty.frame.empty and list(empty.frame.columns) == columns()
    with pytest.raises(UserError, match="no results in"):
        empty.require_rows()
    run_dir = plant.run(tmp_path / "out")
    (run_dir / "records" / ".x.json.1.tmp").write_text("{")
    assert load_results(tmp_path / "out").frame.empty
    # every record bad: the one-line error still names a file and why
    (run_dir / "records" / "c1.json").write_text('{"truncated')
    with pytest.raises(UserError, match=r"no results in .*1 unreadable file.*first: .*c1\.json: unreadable JSON"):
        load_results(tmp_path / "out").require_rows()


def test_load_folder_of_runs_and_several_paths(tmp_path, plant):
    a = plant.run(tmp_path / "out", [plant.record("c1"), plant.record("c2", batch_size=8)])
    b = plant.run(tmp_path / "out", [plant.record("c1")], hardware_id="a100-sxm4-80gb")
    res = load_results(tmp_path / "out")
    assert res.problems == [] and len(res.frame) == 3
    assert set(res.frame["run_id"]) == set(res.runs) == {a.name, b.name}
    assert len(load_results([a, b / "run.json"]).frame) == 3


def test_load_columns_and_derived_numbers(tmp_path, plant):
    run_dir = plant.run(tmp_path, [plant.record("c1", samples=[0.01] * 9 + [0.02], energy_j=50.0, tokens=512)])
    frame = load_results(run_dir).frame
    assert list(frame.columns) == columns()
    assert set(contract_columns()) <= set(frame.columns)
    row = frame.iloc[0]
    assert row["status"] == "ok" and row["valid"] and row["reason"] is None
    assert row["step_time_s"] == pytest.approx(0.011) and row["n_samples"] == 10   # the round's mean: stalls count
    assert row["tokens_per_s"] == pytest.approx(512 / 0.011)
    assert row["peak_flops_per_s"] == H200_BF16 and row["ceiling_flops_per_s"] == 8e14
    assert row["achieved_flops_per_s_executed"] == pytest.approx(1e12 / 0.011)
    assert row["mfu_executed"] == pytest.approx(1e12 / 0.011 / H200_BF16)
    assert row["mfu_article_vs_ceiling"] == pytest.approx(1e12 / 0.011 / 8e14)
    assert row["energy_j_per_token"] == pytest.approx(50.0 / (512 * 10))
    assert math.isnan(row["bytes_per_step"]) and math.isnan(row["bandwidth_util"])  # prefill
    assert row["model"] == "tiny" and row["model_spec"] == "tiny" and row["hardware"] == "h200"
    assert row["weight_bytes"] == pytest.approx(2 * 139_584)       # the tiny preset in bf16
    assert frame["batch_size"].dtype == "Int64" and frame["mfu_executed"].dtype == float


def test_load_corrected_peak_re_derives_old_runs(tmp_path, monkeypatch, plant):
    run_dir = plant.run(tmp_path, [plant.record("c1")])
    before = load_results(run_dir).frame

    class Corrected:  # the sheet, after someone fixed the H200's bf16 peak
        id = "h200"
        memory_bytes_per_s = 4.8e12

        def peak(self, dtype):
            return {"bf16": 2e14}.get(dtype)

    monkeypatch.setattr("llmecon.records.load.get_accelerator", lambda hw: Corrected())
    after = load_results(run_dir).frame
    assert before.loc[0, "mfu_executed"] == pytest.approx(1e14 / H200_BF16)
    assert after.loc[0, "mfu_executed"] == pytest.approx(0.5)
    assert after.loc[0, "mfu_executed_vs_ceiling"] == before.loc[0, "mfu_executed_vs_ceiling"]


def test_load_impossible_mfu_is_invalid(tmp_path, plant):
    too_fast = plant.record("too-fast", flops=1.2e13)           # 1.2e15 FLOP/s on a 989 TFLOP/s chip
    over_ceiling = plant.record("over-ceiling", flops=9e12)     # 9e14 > measured 8e14, < datasheet
    rows = load_results(plant.run(tmp_path, [too_fast, over_ceiling])).frame.set_index("config_id")
    assert rows.loc["too-fast", "status"] == "invalid" and not rows.loc["too-fast", "valid"]
    assert "mfu_executed_out_of_range (1.21)" in rows.loc["too-fast", "reason"]
    assert rows.loc["too-fast", "mfu_executed"] == pytest.approx(1.2e15 / H200_BF16)  # kept, flagged
    assert "mfu_executed_vs_ceiling_out_of_range" in rows.loc["over-ceiling", "reason"]
    assert not rows.loc["over-ceiling", "valid"]


def test_load_article_convention_above_one_is_not_a_verdict(tmp_path, plant):
    flops = {"article": 2e13, "non_embedding": 5e12, "causal": 4e12, "executed": 5e12}
    frame = load_results(plant.run(tmp_path, [plant.record("c1", flops=flops)])).frame
    assert frame.loc[0, "mfu_article"] > 1 and bool(frame.loc[0, "valid"])


def test_load_unknown_peaks_give_null_with_a_reason(tmp_path, plant):
    unknown = plant.run(tmp_path / "a", [plant.record("c1")], hardware_id=None, name="Foo X1")
    no_peak = plant.run(tmp_path / "b", [plant.record("c1", dtype="tf32")], hardware_id="tpu-v4", dtype="tf32")
    not_in_sheet = plant.run(tmp_path / "c", [plant.record("c1")], hardware_id="foo-x1")
    frame = load_results([unknown, no_peak, not_in_sheet]).frame
    assert frame["mfu_executed"].isna().all() and frame["peak_flops_per_s"].isna().all()
    assert frame.loc[0, "peak_reason"] == "'Foo X1' is not in the hardware sheet"
    assert frame.loc[1, "peak_reason"] == "no dense tf32 peak for tpu-v4 in the hardware sheet"
    assert "foo-x1" in frame.loc[2, "peak_reason"]
    assert frame["valid"].all()  # no MFU is not an invalid measurement
    assert frame.loc[0, "mfu_executed_vs_ceiling"] == pytest.approx(0.125)


def test_load_fp32_uses_the_fp32_peak(tmp_path, plant):
    ceilings = {"fp32": {"gemm_flops_per_s": 5e13, "copy_bytes_per_s": 3e12}}
    frame = load_results(plant.run(tmp_path, [plant.record("c1", dtype="fp32", flops=3e11)], ceilings=ceilings)).frame
    assert frame.loc[0, "peak_flops_per_s"] == 67e12  # not the 494.5 TFLOP/s tf32 figure
    assert frame.loc[0, "mfu_executed"] == pytest.approx(3e13 / 67e12)


def test_load_full_model_work_is_used_as_is_and_time_scales_by_time_scale(tmp_path, plant):
    # 1 of 2 layers built; the full model does 3x the built model's executed FLOPs (the LM head runs once)
    flops = {"article": 2e12, "non_embedding": 1e12, "causal": 0.9e12, "executed": 1e12}
    full = {"article": 8e12, "non_embedding": 3.6e12, "causal": 3.4e12, "executed": 3e12}
    part = plant.record("part", flops=flops, full_flops=full, layers=1, energy_j=10.0, tokens=512, time_scale=3.0)
    dec = plant.record("dec", phase="decode", tokens=8, flops=1e10, full_flops=3e10, bytes_step=1e9, full_bytes=2.5e9,
                       samples=(0.001,) * 10, layers=1, time_scale=2.5)
    res = load_results(plant.run(tmp_path, [part, dec]))
    rows = res.frame.set_index("config_id")
    assert res.problems == [] and bool(rows.loc["part", "valid"])
    assert rows.loc["part", "layer_scale"] == 2.0 and rows.loc["part", "time_scale"] == 3.0
    for c in CONVENTIONS:
        assert rows.loc["part", f"flops_per_step_{c}"] == full[c]  # exactly the stored full-model count
    assert rows.loc["part", "step_time_s"] == pytest.approx(0.03)  # not 0.02 (L/k)
    assert rows.loc["part", "first_call_s"] == pytest.approx(0.5 * 3)
    assert rows.loc["part", "tokens_per_s"] == pytest.approx(512 / 0.03)
    assert rows.loc["part", "energy_j_per_token"] == pytest.approx(10.0 / 5120 * 3)
    assert rows.loc["part", "mfu_executed"] == pytest.approx(1e12 / 0.01 / H200_BF16)  # the built model's
    assert rows.loc["dec", "bytes_per_step"] == 2.5e9 and rows.loc["dec", "step_time_s"] == pytest.approx(0.0025)
    assert rows.loc["dec", "bandwidth_util"] == pytest.approx(1e9 / 0.001 / 4.8e12)


def test_load_record_without_a_time_scale_is_a_problem(tmp_path, plant):
    run_dir = plant.run(tmp_path, [plant.record("good"), plant.record("bad")])
    path = run_dir / "records" / "bad.json"
    doc = json.loads(path.read_text())
    del doc["model"]["time_scale"]
    path.write_text(json.dumps(doc))
    res = load_results(run_dir)
    assert list(res.frame["config_id"]) == ["good"] and res.frame.loc[0, "time_scale"] == 1.0
    assert len(res.problems) == 1 and "model.time_scale: Field required" in res.problems[0]


def test_load_decode_bandwidth(tmp_path, plant):
    ok = plant.record("ok", phase="decode", tokens=8, flops=1e10, bytes_step=2e10)
    impossible = plant.record("impossible", phase="decode", tokens=8, flops=1e10, bytes_step=6e10)
    rows = load_results(plant.run(tmp_path, [ok, impossible])).frame.set_index("config_id")
    assert rows.loc["ok", "bytes_per_s"] == pytest.approx(2e12)
    assert rows.loc["ok", "peak_bytes_per_s"] == 4.8e12 and rows.loc["ok", "ceiling_bytes_per_s"] == 4e12
    assert rows.loc["ok", "bandwidth_util"] == pytest.approx(2e12 / 4.8e12)
    assert rows.loc["ok", "bandwidth_util_vs_ceiling"] == pytest.approx(0.5)
    assert bool(rows.loc["ok", "valid"])
    assert "bandwidth_util_out_of_range" in rows.loc["impossible", "reason"]  # 6 TB/s on a 4.8 TB/s chip


def test_load_failures_and_invalid_timing_are_rows_without_numbers(tmp_path, plant):
    oom = plant.record("oom", status="oom", reasons=["OutOfMemoryError: CUDA out of memory"], samples=())
    short = plant.record("short", status="invalid", reasons=["min_iterations_not_met", "min_duration_not_met"],
                         samples=(0.01,) * 4,
                         validity={"valid": False, "reasons": ["min_iterations_not_met", "min_duration_not_met"],
                                   "warnings": []})
    res = load_results(plant.run(tmp_path, [oom, short]))
    rows = res.frame.set_index("config_id")
    assert res.problems == [] and not rows["valid"].any()
    assert rows.loc["oom", "status"] == "oom" and math.isnan(rows.loc["oom", "tokens_per_s"])
    assert rows.loc["oom", "reason"] == "OutOfMemoryError: CUDA out of memory"
    assert rows.loc["short", "reason"] == "min_iterations_not_met; min_duration_not_met"
    assert rows.loc["short", "step_time_s"] == 0.01  # numbers kept for inspection, row invalid


def test_load_ok_record_with_failed_timing_verdict_is_invalid(tmp_path, plant):
    rec = plant.record("c1", samples=[0.009] * 5 + [0.011] * 5,  # IQR/median = 20 %: noisy here too
                       validity={"valid": False, "reasons": ["min_duration_not_met"], "warnings": ["noisy"]})
    frame = load_results(plant.run(tmp_path, [rec])).frame
    assert frame.loc[0, "status"] == "invalid" and frame.loc[0, "reason"] == "min_duration_not_met"
    assert frame.loc[0, "warnings"] == "noisy"


def test_load_energy_per_token_only_from_a_long_enough_window(tmp_path, plant):
    """NVML's power readings cover part of each 100 ms: under MIN_ENERGY_WINDOW_S no energy per token."""
    rec = plant.record("short", samples=[0.01] * 10, energy_j=50.0, tokens=512)
    rec["telemetry"]["window_s"] = MIN_ENERGY_WINDOW_S / 4
    frame = load_results(plant.run(tmp_path, [rec])).frame
    assert math.isnan(frame.loc[0, "energy_j_per_token"]) and frame.loc[0, "mean_power_w"] == 500.0


def _generate_record(plant, config_id, ttft_rounds, tpot_rounds, **kw):
    """A generate record (new_tokens 4: three decode steps per request) whose request samples are TTFT + steps."""
    samples = [[t + sum(steps[3 * i:3 * i + 3]) for i, t in enumerate(ttft)]
               for ttft, steps in zip(ttft_rounds, tpot_rounds)]
    rec = plant.record(config_id, phase="generate", new_tokens=4, batch_size=2, seq_len=16, rounds=samples, **kw)
    for rnd, ttft, steps in zip(rec["timing"]["rounds"], ttft_rounds, tpot_rounds):
        rnd.update(ttft_samples_s=list(ttft), tpot_samples_s=list(steps))
    return rec


def test_load_generate_latencies_are_the_pooled_median_and_p90_of_the_raw_samples(tmp_path, plant):
    ttft = [[0.010, 0.012, 0.011], [0.013, 0.009]]
    tpot = [[0.004, 0.005, 0.003, 0.006, 0.004, 0.004, 0.005, 0.007, 0.004], [0.003, 0.004, 0.008, 0.005, 0.004, 0.006]]
    rec = _generate_record(plant, "gen", ttft, tpot, time_scale=2.0, flops=1e9)
    short = _generate_record(plant, "short", [[0.010, 0.012]], [[0.004] * 5])   # a request lost a step
    prefill = plant.record("prefill")
    rows = load_results(plant.run(tmp_path, [rec, short, prefill])).frame.set_index("config_id")
    row = rows.loc["gen"]
    assert row["valid"] and row["tokens_per_step"] == 8 and row["new_tokens"] == 4
    # by hand: TTFT sorted 9, 10, 11, 12, 13 ms: median 11 ms; p90 at rank 0.9 x 4 = 3.6: 12 + 0.6 x (13 - 12) ms
    assert row["ttft_s"] == pytest.approx(2.0 * 0.011) and row["ttft_p90_s"] == pytest.approx(2.0 * 0.0126)
    # TPOT: 15 steps, sorted 3 3 4 4 4 4 4 4 5 5 5 6 6 7 8 ms: median the 8th (4 ms); p90 at 12.6: 6 + 0.6 x (7 - 6) ms
    assert row["tpot_s"] == pytest.approx(2.0 * 0.004) and row["tpot_p90_s"] == pytest.approx(2.0 * 0.0066)
    requests = [[t + sum(s[3 * i:3 * i + 3]) for i, t in enumerate(tt)] for tt, s in zip(ttft, tpot)]
    means = sorted(sum(r) / len(r) for r in requests)
    assert row["step_time_s"] == pytest.approx(2.0 * sum(means) / 2)   # the median of two round means
    assert row["tokens_per_s"] == pytest.approx(8 / row["step_time_s"])
    assert row["mfu_executed"] == pytest.approx(1e9 / row["step_time_s"] / H200_BF16)
    assert row["bytes_per_step"] > 0 and math.isnan(row["bandwidth_util"])   # a request's bytes; no MBU over it
    assert not rows.loc["short", "valid"] and "generate_samples_mismatch" in rows.loc["short", "reason"]
    assert all(math.isnan(rows.loc["prefill", c]) for c in ("ttft_s", "ttft_p90_s", "tpot_s", "tpot_p90_s"))


def test_load_schema_4_record_still_loads(tmp_path, plant):
    run_dir = plant.run(tmp_path, [plant.record("old", phase="decode", tokens=1, bytes_step=3e9)])
    path = run_dir / "records" / "old.json"
    doc = json.loads(path.read_text())
    for rnd in doc["timing"]["rounds"]:
        del rnd["ttft_samples_s"], rnd["tpot_samples_s"]
    path.write_text(json.dumps({**doc, "schema_version": 4}))
    res = load_results(run_dir, strict=True)
    row = res.frame.iloc[0]
    assert row["valid"] and row["phase"] == "decode" and row["step_time_s"] == pytest.approx(0.01)
    assert math.isnan(row["ttft_s"]) and math.isnan(row["tpot_s"])
