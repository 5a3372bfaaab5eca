"""`bench --dry-run`'s plan: memory by part, the fit a real run would act on, a time and where it comes from,
and nothing built, imported or run for it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from llmecon.calibration.apply import predict_detail
from llmecon.calibration.fit import fit_calibration
from llmecon.costmodel.hardware import get_accelerator
from llmecon.errors import UserError
from llmecon.estimate.dryrun import dry_run, resolve_target
from llmecon.measure.record import work_block
from llmecon.costmodel.presets import load_model_shape
from llmecon.measure.spec import BenchSpec, default_suite

ROOT = Path(__file__).resolve().parents[2]


def _rows(plan: dict) -> dict[tuple, dict]:
    return {(r["model"], r["phase"], r["batch_size"], r["seq_len"]): r for r in plan["rows"]}


def test_dryrun_default_cuda_suite_on_an_h200_skips_the_8b_training_batches_that_cannot_fit():
    plan = dry_run(default_suite("cuda"), resolve_target("auto", "h200"))
    rows = _rows(plan)
    assert len(rows) == 2 * 3 * 2 * 3
    for batch in (8, 32):
        r = rows[("llama-3-8b", "train", batch, 2048)]
        assert r["fits"] is False and r["action"] == "skip" and r["reason"].startswith("predicted_oom: needs ")
        assert r["memory"]["total_bytes"] > plan["target"]["usable_bytes"]
    assert all(r["fits"] for k, r in rows.items() if k[0] == "llama-3.2-1b" and k[1] != "train")
    assert rows[("llama-3.2-1b", "train", 8, 2048)]["fits"] is True
    assert plan["target"]["memory_bytes"] == get_accelerator("h200").memory_bytes
    assert plan["target"]["usable_bytes"] == pytest.approx(0.9 * plan["target"]["memory_bytes"])


def test_dryrun_parts_are_the_runs_dtype_and_the_total_the_peak():
    r = _rows(dry_run(default_suite("cuda"), resolve_target("cuda", "h200")))[("llama-3.2-1b", "train", 1, 512)]
    parts, n = r["memory"]["parts_bytes"], load_model_shape("llama-3.2-1b").params_total
    assert (parts["weights"], parts["gradients"], parts["optimizer"]) == (4 * n, 4 * n, 8 * n)
    assert parts["autocast_copies"] > 0 and r["dtype"] == "bf16"
    assert r["memory"]["total_bytes"] <= sum(parts.values())


def test_dryrun_without_a_calibration_times_by_the_labelled_datasheet_roofline():
    spec = BenchSpec(models=("llama-3-8b",), phases=("prefill", "decode"), seq_lens=(2048,), new_tokens=32,
                     dtype="bf16", device="cuda")
    rows = _rows(dry_run(spec, resolve_target("cuda", "h200")))
    h200, full = get_accelerator("h200"), load_model_shape("llama-3-8b")
    pre, dec = rows[("llama-3-8b", "prefill", 1, 2048)], rows[("llama-3-8b", "decode", 1, 2048)]
    assert pre["step_time_s"] == pytest.approx(work_block(full, "prefill", 1, 2048, None, "bf16")
                                               ["flops_per_step"]["executed"] / h200.peak("bf16"))
    assert dec["step_time_s"] == pytest.approx(work_block(full, "decode", 1, 2048, 32, "bf16")["bytes_per_step"]
                                               / h200.memory_bytes_per_s)   # a decode step at batch 1 is bandwidth-bound
    assert pre["time_basis"] == dec["time_basis"] == "roofline"
    assert "datasheet roofline" in pre["time_source"] and "lower bound" in pre["time_source"]
    assert dec["tokens_per_s"] == pytest.approx(1 / dec["step_time_s"])


def test_dryrun_with_a_calibration_for_the_target_uses_its_fit_and_says_so(plant):
    calib = fit_calibration(plant.frame(hardware_id="h200", dtype="bf16"))
    spec = BenchSpec(models=("tiny",), phases=("prefill", "train"), seq_lens=(128,), dtype="bf16", device="cuda")
    plan = dry_run(spec, resolve_target("cuda", "h200"), calib)
    for r in plan["rows"]:
        work = work_block(load_model_shape("tiny"), r["phase"], 1, 128, None, "bf16")
        want = predict_detail(calib, "h200", "bf16", r["phase"], work["flops_per_step"][calib.flop_convention], None)
        assert r["step_time_s"] == pytest.approx(want["step_time_s"]) and r["time_basis"] == "calibration"
        assert r["time_source"].startswith("calibrated on h200")
    assert plan["calibration"] == calib.summary()


def test_dryrun_calibration_from_other_hardware_falls_back_to_the_roofline_with_a_note(plant):
    calib = fit_calibration(plant.frame(hardware_id="h100-sxm", dtype="bf16"))
    spec = BenchSpec(models=("tiny",), phases=("prefill",), dtype="bf16", device="cuda")
    (row,) = dry_run(spec, resolve_target("cuda", "h200"), calib)["rows"]
    assert row["time_basis"] == "roofline" and "measured on h100-sxm, not on h200" in row["time_note"]


def test_dryrun_on_this_cpu_plans_against_its_ram_and_has_no_datasheet_time():
    plan = dry_run(default_suite("cpu"), resolve_target("cpu"))
    assert plan["target"]["kind"] == "cpu" and plan["target"]["memory_bytes"] > 0
    assert all(r["fits"] and r["action"] == "run" and r["step_time_s"] is None for r in plan["rows"])
    assert "a CPU has no datasheet peak" in plan["rows"][0]["time_source"]


def test_dryrun_no_memory_check_plans_to_run_what_does_not_fit():
    spec = dataclasses.replace(default_suite("cuda"), memory_check=False)
    rows = _rows(dry_run(spec, resolve_target("cuda", "h200")))
    r = rows[("llama-3-8b", "train", 32, 2048)]
    assert r["fits"] is False and r["action"] == "run"


@pytest.mark.parametrize("device, hardware, message", [
    ("cpu", "h200", "--device cpu plans for this machine's CPU"),
    ("auto", "h2000", "unknown accelerator 'h2000'"),
    ("tpu", "h200", "--device must be auto, cpu, cuda or cuda:N"),
])
def test_dryrun_bad_target_is_one_clear_user_error(device, hardware, message):
    with pytest.raises(UserError, match=message):
        resolve_target(device, hardware)


def test_dryrun_cuda_without_cuda_here_asks_for_hardware(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"CUDA is not available.*--hardware ID"):
        resolve_target("cuda")


@pytest.mark.slow
def test_dryrun_imports_neither_torch_nor_transformers_for_a_named_gpu():
    code = ("import sys, llmecon\n"
            "plan = llmecon.bench_plan(hardware='h200')\n"
            "assert len(plan['rows']) == 36\n"
            "print('LOADED:', *[m for m in ('torch', 'transformers') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.rsplit("LOADED:", 1)[1].split() == []
