"""bench's parts without worker processes: preflight refusals, probe without CUDA or NVML, models, decode."""

from __future__ import annotations

import sys
import types

import pytest
from click.testing import CliRunner

from llmecon.bench import probe
from llmecon.bench.models import build_model, trimmed_config
from llmecon.bench.runner import BenchSpec, default_suite, plan
from llmecon.cli import main
from llmecon.errors import UserError


def test_device_cuda_without_cuda_exits_2_before_anything(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    import llmecon.bench.models as models

    monkeypatch.setattr(models, "build_model", lambda *a, **k: pytest.fail("a model was built"))
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "CUDA is not available" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no run folder either


@pytest.mark.parametrize("args, numbers", [
    (["--phase", "prefill", "--seq-len", "4096"], ("4096", "2048")),
    (["--phase", "decode", "--seq-len", "2040", "--new-tokens", "16"], ("2056", "2048")),
])
def test_shapes_beyond_context_are_refused_up_front(tmp_path, args, numbers):
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--device", "cpu", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert all(n in result.stderr for n in numbers), result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--model", "tiny", "--weights", "local"], "not a local model folder"),
    (["--model", "CONFIG_DIR", "--weights", "local"], "has no weight files"),
    (["--model", "tiny", "--min-time", "5", "--max-time", "1"], "exceeds max_time_s"),
    (["--batch-size", "8"], "--batch-size: not used, without --model"),  # the default suite would ignore it
    (["--resume", "RUN_DIR", "--model", "tiny"], "--model, --device, --out: not used, --resume reruns"),
])
def test_refused_up_front_one_line_no_run_folder(tmp_path, args, message):
    config_dir, run_dir, out = tmp_path / "cfg", tmp_path / "run", tmp_path / "out"
    config_dir.mkdir()
    (config_dir / "config.json").write_text('{"model_type": "llama", "vocab_size": 64, "hidden_size": 16, '
                                            '"intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}')
    run_dir.mkdir()
    args = [{"CONFIG_DIR": str(config_dir), "RUN_DIR": str(run_dir)}.get(a, a) for a in args]
    result = CliRunner().invoke(main, ["bench", "--device", "cpu", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmecon: error: ") and message in lines[0], result.stderr
    assert not out.exists() and list(run_dir.iterdir()) == []


@pytest.mark.parametrize("kw", [
    {"phases": ("serve",)}, {"dtype": "fp8"}, {"batch_sizes": (0,)}, {"seq_lens": ()}, {"device": "tpu"},
    {"new_tokens": 0}, {"layers": 0}, {"attn_implementation": "flash"}, {"timeout_s": 0}, {"models": ()},
    {"min_time_s": 5.0, "max_time_s": 1.0},  # the cap would end every timed window first
])
def test_benchspec_refuses_bad_values(kw):
    with pytest.raises(UserError):
        BenchSpec(**{"models": ("tiny",), **kw})


def test_default_suites_and_plan_order():
    cpu = default_suite("cpu")
    assert cpu.device == "cpu" and cpu.models == ("tiny",) and set(cpu.phases) == {"prefill", "decode", "train"}
    gpu = default_suite("cuda")
    assert "llama-3-8b" in gpu.models and gpu.dtype == "bf16"
    with pytest.raises(UserError):
        default_suite("tpu")
    configs = plan(BenchSpec(models=("tiny",), phases=("prefill",), batch_sizes=(8, 1, 4), seq_lens=(16,)), "cpu")
    assert [c["batch_size"] for c in configs] == [1, 4, 8]  # increasing: an OOM skips what follows
    # a value given twice is one configuration, measured once (not N times over the same record)
    twice = plan(BenchSpec(models=("tiny", "tiny"), phases=("prefill", "prefill"), batch_sizes=(1, 1),
                           seq_lens=(16, 16)), "cpu")
    assert [c["config_id"] for c in twice] == [configs[0]["config_id"]]
    assert len({c["config_id"] for c in configs}) == 3
    assert plan(BenchSpec(models=("tiny",), phases=("prefill",), batch_sizes=(1,), seq_lens=(16,)), "cpu")[0][
        "config_id"] == configs[0]["config_id"]  # deterministic: --resume finds the same ids


def test_no_nvml_means_null_telemetry_with_reason(monkeypatch):
    import torch

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    mod, reason = probe.nvml()
    assert mod is None and "pynvml not importable" in reason
    summary = probe.TelemetrySampler("cuda:0").start().stop()
    assert summary["energy_j"] is None and summary["mean_power_w"] is None
    assert "pynvml not importable" in summary["reason"]
    # a CUDA device whose NVML is missing: the probe still answers, telemetry null with the reason
    props = types.SimpleNamespace(name="NVIDIA H200", total_memory=141 << 30, multi_processor_count=132,
                                  major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    info = probe.probe_device("cuda:0")
    assert info["telemetry_available"] is False and "pynvml" in info["telemetry_reason"]
    assert info["name"] == "NVIDIA H200" and info["hardware_id"] == "h200"


class _FakeNVML(types.ModuleType):
    """Just enough of pynvml: power 300 W, SM clock 1500 MHz, sw_power_cap + idle bits, energy counter."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 2, 0

    def __init__(self):
        super().__init__("pynvml")
        self.energy_mj = 1_000_000

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, i):
        return "h0"

    def nvmlDeviceGetPowerUsage(self, h):
        return 300_000

    def nvmlDeviceGetClockInfo(self, h, kind):
        return 1500

    def nvmlDeviceGetTemperature(self, h, kind):
        return 61

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return 0x1 | 0x4  # GpuIdle (ignored) | SwPowerCap

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self.energy_mj += 500  # 0.5 J per reading
        return self.energy_mj


def test_telemetry_sampler_with_fake_nvml(monkeypatch):
    fake = _FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(probe, "_nvml_index", lambda mod, i: i)
    sampler = probe.TelemetrySampler("cuda:0", interval_s=0.01).start()
    import time

    time.sleep(0.05)
    s = sampler.stop()
    assert s["reason"] is None and s["n_samples"] >= 2
    assert s["throttle_reasons"] == ["sw_power_cap"]  # the idle bit is not a throttle
    assert s["sm_clock_mhz_median"] == 1500 and s["max_temp_c"] == 61
    assert s["energy_j"] == pytest.approx(0.5) and s["mean_power_w"] > 0
    assert s["energy_source"] == "nvmlDeviceGetTotalEnergyConsumption"


def test_layers_builds_first_k_at_full_width_and_trims_per_layer_lists():
    built = build_model("tiny", device="cpu", dtype="fp32", layers=1, attn_implementation="eager")
    assert built.layers_built == 1 and built.layer_scale == 2.0
    assert len(built.model.model.layers) == 1
    assert built.model.config._attn_implementation == "eager"
    assert built.shape.hidden_size == built.full_shape.hidden_size
    cfg = trimmed_config({"model_type": "x", "num_hidden_layers": 4, "layer_types": ["a", "b", "a", "b"],
                          "hidden_size": 4}, 2)
    assert cfg["num_hidden_layers"] == 2 and cfg["layer_types"] == ["a", "b"] and cfg["hidden_size"] == 4
    with pytest.raises(UserError):
        trimmed_config({"num_hidden_layers": 2}, 3)


def test_layers_record_holds_full_model_work_and_a_work_ratio_time_scale():
    from llmecon.bench.models import built_shape
    from llmecon.bench.worker import base_record
    from llmecon.costmodel.flops import CONVENTIONS, train_step_flops
    from llmecon.costmodel.memory import decode_bytes

    shape, full = built_shape("llama-3-8b", 8)  # the 128k-vocab LM head runs once, not 4 times
    cfg = {"config_id": "c", "model": "llama-3-8b", "phase": "train", "batch_size": 1, "seq_len": 2048,
           "new_tokens": None, "dtype": "bf16", "attn_implementation": "sdpa", "layers": 8}
    rec = base_record(cfg, shape, full, status="error", reason="x", knobs={})
    assert rec["model"]["layer_scale"] == 4.0
    assert rec["work"]["full_model"]["flops_per_step"] == {c: train_step_flops(full, 1, 2048, c) for c in CONVENTIONS}
    assert rec["work"]["flops_per_step"]["executed"] == train_step_flops(shape, 1, 2048, "executed")
    ratio = train_step_flops(full, 1, 2048, "executed") / train_step_flops(shape, 1, 2048, "executed")
    assert rec["model"]["time_scale"] == ratio and 3.2 < ratio < 3.5  # L/k = 4 would overstate by ~20 %
    assert "executed FLOPs" in rec["model"]["extrapolation_basis"]
    dec = base_record({**cfg, "phase": "decode", "new_tokens": 4}, shape, full, status="error", reason="x", knobs={})
    assert rec["work"]["full_model"]["bytes_per_step"] is None
    assert dec["work"]["full_model"]["bytes_per_step"] == decode_bytes(full, "bf16", 1, 2048, 4) / 4
    assert dec["model"]["time_scale"] == pytest.approx(decode_bytes(full, "bf16", 1, 2048, 4)
                                                       / decode_bytes(shape, "bf16", 1, 2048, 4))
    assert "bytes read" in dec["model"]["extrapolation_basis"]
    whole = base_record({**cfg, "layers": None}, full, full, status="error", reason="x", knobs={})
    assert whole["model"]["time_scale"] == 1.0
    assert whole["work"]["full_model"]["flops_per_step"] == whole["work"]["flops_per_step"]


def test_remote_code_configs_are_refused():
    from llmecon.costmodel.architecture import load_model_shape

    cfg = dict(load_model_shape("tiny").hf_config)
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    with pytest.raises(UserError, match="remote code"):
        build_model(cfg, device="cpu", dtype="fp32")


@pytest.mark.parametrize("static_cache", [False, True])
def test_decode_times_one_step_per_sample_at_known_positions(static_cache):
    from llmecon.bench.workloads import run_workload

    built = build_model("tiny", device="cpu", dtype="fp32")
    out = run_workload(built, "decode", batch_size=2, seq_len=8, new_tokens=3, dtype="fp32", device="cpu",
                       static_cache=static_cache, timing={"warmup_iters": 1, "min_iters": 4, "min_time_s": 0.0,
                                                          "max_time_s": 5.0})
    t = out["timing"]
    assert t["validity"]["valid"], t["validity"]
    assert t["n_samples"] == 6  # min_iters rounded up to whole passes of 3 steps
    assert t["context_positions"] == [8, 9, 10, 8, 9, 10]
    assert t["warmup_iters"] == 2  # cold call + 2 = one full untimed pass
    assert all(s > 0 for s in t["samples_s"]) and t["prompt_prefill_s"] > 0
    assert out["tokens_per_step"] == 2


def test_train_with_activation_checkpointing_counts_hardware_flops_not_model_flops():
    from llmecon.bench.worker import work_block
    from llmecon.bench.workloads import run_workload

    built = build_model("tiny", device="cpu", dtype="fp32", train=True)
    out = run_workload(built, "train", batch_size=2, seq_len=16, new_tokens=0, dtype="fp32", device="cpu",
                       activation_checkpointing=True,
                       timing={"warmup_iters": 1, "min_iters": 2, "min_time_s": 0.0, "max_time_s": 5.0})
    assert out["timing"]["validity"]["valid"] and out["timing"]["final_loss"] > 0
    plain = work_block(built.shape, "train", 2, 16, None, "fp32")
    ckpt = work_block(built.shape, "train", 2, 16, None, "fp32", activation_checkpointing=True)
    assert ckpt["flops_per_step"] == plain["flops_per_step"]  # MFU does not change
    assert ckpt["hardware_flops_per_step"] == pytest.approx(plain["flops_per_step"]["executed"] * 4 / 3)


def test_real_weights_only_from_a_local_folder(tmp_path):
    import torch

    saved = build_model("tiny", device="cpu", dtype="fp32", seed=123)
    saved.model.save_pretrained(tmp_path)
    loaded = build_model(str(tmp_path), device="cpu", dtype="fp32", weights="local")
    for (name, a), (_, b) in zip(saved.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.weights == "local"
    with pytest.raises(UserError, match="local model folder"):
        build_model("tiny", device="cpu", dtype="fp32", weights="local")


def test_host_cpu_monitor_sees_a_busy_neighbour():
    import subprocess
    import time

    burner = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()+3\nwhile time.time()<t: pass"])
    try:
        time.sleep(0.3)
        m = probe.HostCpuMonitor().start()
        time.sleep(1.0)
        s = m.stop()
    finally:
        burner.kill()
        burner.wait()
    assert s["reason"] is None and s["window_s"] >= 1.0
    assert s["other_cpu_cores"] > 0.5 and s["busy"] is True


def test_final_table_shows_why_an_ok_row_is_suspect(tmp_path, capsys):
    # a row measured on a busy host is "ok" with a warning; the table at the end of bench must say so
    from results_fixtures import make_record, make_run

    from llmecon.cli.bench import _report

    busy = {"valid": True, "reasons": [], "warnings": ["host_busy:1.05_other_cores"]}
    run_dir = make_run(tmp_path, [make_record("busy", validity=busy), make_record("clean", batch_size=2)])
    _report(run_dir, as_json=False)
    out = capsys.readouterr().out
    assert "warning: host_busy:1.05_other_cores" in out and out.count("warning:") == 1
