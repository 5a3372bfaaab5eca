"""The CUDA branches of a bench, driven end to end through the fake device (fakes.py) on the CPU: events beside
the host clock, launch-bound flagging, energy and peak memory around decode's re-prefill, the energy window,
power capping apart from throttling, other processes on the GPU, OOM classification, the compute mode and the
probe in a child process."""

from __future__ import annotations

import json

import pytest

from llmecon.measure import runner as runner_mod
from llmecon.measure import workloads
from llmecon.measure.runner import run_bench
from llmecon.measure.spec import BenchSpec
from llmecon.records.load import load_results
from llmecon.records.schema import MIN_ENERGY_WINDOW_S, Record, Run

pytestmark = pytest.mark.slow   # every test builds a tiny model

FAST = dict(isolate=False, dtype="fp32", min_iters=3, min_time_s=0.0, max_time_s=5.0, warmup_iters=1, rounds=2,
            target_rel_ci=0.0)


def _run(tmp_path, **kw):
    spec = BenchSpec(**{"models": ("tiny",), "device": "cuda", "seq_lens": (8,), "new_tokens": 3, **FAST, **kw})
    run_dir = run_bench(spec, tmp_path, progress=False)
    records = [Record.model_validate(json.loads(p.read_text())) for p in sorted((run_dir / "records").glob("*.json"))]
    return run_dir, Run.model_validate(json.loads((run_dir / "run.json").read_text())), records


def test_gpu_path_events_beside_host_time_and_launch_bound(tmp_path, fake_cuda):
    fake_cuda(event_factor=0.9, kernel_time_s=1e-6, kernels=420)
    run_dir, run, records = _run(tmp_path, phases=("prefill", "decode", "train", "generate"), batch_sizes=(1,))
    assert run.device.kind == "cuda" and run.device.hardware_id == "h200" and run.device.compute_mode == "default"
    assert "CUDA events" in run.ceilings["fp32"].timing_method
    assert {r.config.phase for r in records} == {"prefill", "decode", "train", "generate"}
    for rec in records:
        assert rec.status == "ok", rec.reasons
        t = rec.timing
        for rnd in t.rounds:  # one device time per host sample, a little under it (the fake's factor)
            assert len(rnd.device_samples_s) == len(rnd.samples_s)
            assert all(d == pytest.approx(0.9 * h, rel=0.2, abs=2e-4) for d, h in zip(rnd.device_samples_s, rnd.samples_s))
        assert t.device_step_s == pytest.approx(0.9 * t.step_s, rel=0.2)
        assert rec.work.ops.cuda_kernels_per_step == 420 and rec.work.ops.cuda_kernel_time_s_per_step == 1e-6
        assert t.device_busy_fraction == pytest.approx(1e-6 / t.step_s) and t.launch_bound is True
        assert any(w.startswith("launch_bound:") for w in t.validity.warnings)
        # a short telemetry window: the energy is kept, no energy per token, and the record says why
        assert rec.telemetry.window_s < MIN_ENERGY_WINDOW_S and rec.telemetry.energy_j is not None
        assert rec.telemetry.energy_j_per_token is None and "under 2 s" in rec.telemetry.energy_reason
        assert rec.memory.peak_bytes == 1 << 30
    frame = load_results(run_dir).frame
    assert frame["launch_bound"].tolist() == [True] * 4 and frame["device_step_s"].notna().all()
    generate = frame[frame["phase"] == "generate"].iloc[0]   # the device clock brackets each whole request
    assert generate["valid"] and generate["ttft_s"] > 0 and generate["tpot_s"] > 0
    assert frame["energy_j_per_token"].isna().all()


def test_gpu_path_busy_gpu_is_not_launch_bound(tmp_path, fake_cuda):
    fake_cuda(kernel_time_s=10.0)   # far more than any step here: the GPU is busy all the step
    _, _, records = _run(tmp_path, phases=("prefill",), batch_sizes=(1,))
    assert records[0].timing.launch_bound is False
    assert not any(w.startswith("launch_bound") for w in records[0].timing.validity.warnings)


def test_gpu_path_decode_re_prefill_is_left_out_of_energy_and_peak_memory(tmp_path, fake_cuda, monkeypatch):
    factory = fake_cuda()
    real_prefill = workloads._Decoder.prefill

    def hot_prefill(self):  # a prompt prefill draws 900 W and peaks at 9 GiB; decode steps 300 W and 1 GiB
        be = factory.last
        be.nvml_fake.set_power(900.0)
        be.spike_bytes = 9 << 30
        be.peak_memory()
        real_prefill(self)
        be.spike_bytes = None
        be.nvml_fake.set_power(300.0)

    monkeypatch.setattr(workloads._Decoder, "prefill", hot_prefill)
    # long enough for energy per token (MIN_ENERGY_WINDOW_S over the rounds), with several passes of 3 steps
    _, _, records = _run(tmp_path, phases=("decode",), batch_sizes=(1,), min_time_s=1.1, max_time_s=10.0)
    rec = records[0]
    assert rec.status == "ok", rec.reasons
    positions = [p for r in rec.timing.rounds for p in r.context_positions]
    assert positions.count(8) > 2   # several passes, so several re-prefills inside the windows
    tele = rec.telemetry
    assert tele.excluded_s > 0 and tele.window_s >= MIN_ENERGY_WINDOW_S
    assert tele.mean_power_w == pytest.approx(300.0, rel=0.03)   # the prefills' 900 W left out
    assert tele.energy_j_per_token == pytest.approx(
        tele.energy_j / tele.tokens_in_samples) and tele.energy_reason is None
    assert rec.memory.peak_bytes == 1 << 30                      # the prefills' 9 GiB left out


@pytest.mark.parametrize("reasons, processes, throttled, capped, shared", [
    (0x4, 1, None, 1.0, None),                                   # at the power limit: not throttled
    (0x4 | 0x40, 1, "throttled:hw_thermal_slowdown", 1.0, None),
    (0x0, 3, None, 0.0, "gpu_shared:2_other_processes"),
])
def test_gpu_path_power_cap_throttling_and_other_processes(tmp_path, fake_cuda, reasons, processes, throttled,
                                                            capped, shared):
    fake_cuda(kernel_time_s=10.0, nvml=fake_cuda.fakes.FakeNvml(reasons=reasons, processes=processes))
    run_dir, _, records = _run(tmp_path, phases=("prefill",), batch_sizes=(1,))
    warnings = records[0].timing.validity.warnings
    assert [w for w in warnings if w.startswith("throttled")] == ([throttled] if throttled else [])
    assert [w for w in warnings if w.startswith("gpu_shared")] == ([shared] if shared else [])
    assert records[0].telemetry.power_capped_fraction == capped
    assert load_results(run_dir).frame["power_capped_fraction"].iloc[0] == capped


def test_gpu_path_cublas_allocation_failure_is_an_oom_and_skips_larger_batches(tmp_path, fake_cuda, monkeypatch):
    fake_cuda()
    monkeypatch.setenv("LLMECON_FAULT_CUBLAS_BATCH", "2")
    _, _, records = _run(tmp_path, phases=("prefill",), batch_sizes=(1, 2, 4), rounds=1)
    status = {r.config.batch_size: (r.status, "; ".join(r.reasons)) for r in records}
    assert status[1][0] == "ok"
    assert status[2][0] == "oom" and "CUBLAS_STATUS_ALLOC_FAILED" in status[2][1] and "out of memory:" in status[2][1]
    assert status[4][0] == "skipped" and status[4][1].startswith("larger_than_oom_batch")


def test_gpu_path_probe_runs_in_a_child_on_a_gpu_and_the_parent_touches_no_device(tmp_path, fake_cuda, monkeypatch):
    """On a GPU the parent must not hold a CUDA context (EXCLUSIVE_PROCESS): the probe and the ceilings run in a
    child. Here the child is replaced by a stub; the test of probe_in_child itself runs a real child on the CPU."""
    factory = fake_cuda()
    asked = []

    def child(device, dtype, threads):
        asked.append((device, dtype))
        return ({"kind": "cuda", "device": device, "name": "NVIDIA H200", "hardware_id": "h200",
                 "hardware_match_reason": None, "compute_mode": "exclusive_process"},
                {dtype: {"gemm_flops_per_s": 7e14, "copy_bytes_per_s": 4e12}})

    monkeypatch.setattr(runner_mod, "probe_in_child", child)
    spec = BenchSpec(models=("tiny",), device="cuda", dtype="bf16", isolate=True)
    probe, ceilings = runner_mod._probe(spec, "cuda:0", "cuda")
    assert asked == [("cuda:0", "bf16")] and probe["compute_mode"] == "exclusive_process"
    assert factory.made == {}     # the parent made no device backend: no context, no NVML handle


def test_gpu_path_probe_in_child_returns_the_device_and_its_ceilings():
    probe, ceilings = runner_mod.probe_in_child("cpu", "fp32", 1)
    assert probe["kind"] == "cpu" and probe["torch_threads"] == 1
    assert ceilings["fp32"]["gemm_flops_per_s"] > 0 and "host clock" in ceilings["fp32"]["timing_method"]
