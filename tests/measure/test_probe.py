"""The device probe without CUDA or NVML, telemetry from a fake NVML, and the host monitor."""

from __future__ import annotations

import sys
import time
import types

import pytest
import torch

from llmecon.errors import UserError
from llmecon.measure import device as device_mod
from llmecon.measure import probe


def test_probe_no_nvml_means_null_telemetry_with_reason(monkeypatch, fake_cuda):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: None)
    nv, reason = device_mod.CudaBackend("cuda:0").nvml()
    assert nv is None and "pynvml not importable" in reason
    # a CUDA device whose NVML is missing: the probe still answers, telemetry null with the reason
    fake_cuda(nvml_reason=reason)
    summary = probe.TelemetrySampler("cuda:0").start().stop()
    assert summary["energy_j"] is None and summary["mean_power_w"] is None
    assert "pynvml not importable" in summary["reason"]
    info = probe.probe_device("cuda:0")
    assert info["telemetry_available"] is False and "pynvml" in info["telemetry_reason"]
    assert info["name"] == "NVIDIA H200" and info["hardware_id"] == "h200"


class _FakeNVML(types.ModuleType):
    """Just enough of pynvml: power 300 W, SM clock 1500 MHz, idle + power-cap + thermal bits, energy counter,
    the EXCLUSIVE_PROCESS compute mode, two compute processes."""

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
        return 0x1 | 0x4 | 0x20  # GpuIdle (ignored) | SwPowerCap | SwThermalSlowdown

    def nvmlDeviceGetComputeMode(self, h):
        return 3

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [types.SimpleNamespace(pid=1, usedGpuMemory=1 << 30), types.SimpleNamespace(pid=2, usedGpuMemory=None)]

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self.energy_mj += 500  # 0.5 J per reading
        return self.energy_mj


def test_probe_real_nvml_wrapper_and_sampler_with_a_fake_pynvml(monkeypatch):
    fake = _FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(device_mod, "nvml_index", lambda mod, i: i)
    monkeypatch.setattr(device_mod, "BACKEND_FACTORY", lambda d: device_mod.CudaBackend(d))
    nv, reason = device_mod.backend("cuda:0").nvml()
    assert reason is None and nv.compute_mode() == "exclusive_process" and nv.process_count() == 2
    details = nv.details()
    assert details["compute_mode"] == "exclusive_process" and len(details["gpu_processes"]) == 2
    sampler = probe.TelemetrySampler("cuda:0", interval_s=0.01).start()
    time.sleep(0.05)
    s = sampler.stop()
    assert s["reason"] is None and s["n_samples"] >= 2
    # holding the power limit is not throttling: it is counted apart; the idle bit is neither
    assert s["throttle_reasons"] == ["sw_thermal_slowdown"] and s["power_capped_fraction"] == 1.0
    assert s["sm_clock_mhz_median"] == 1500 and s["max_temp_c"] == 61 and s["gpu_processes_max"] == 2
    assert s["energy_j"] == pytest.approx(0.5) and s["mean_power_w"] > 0
    assert s["energy_source"] == "nvmlDeviceGetTotalEnergyConsumption"


def test_probe_sampler_pause_leaves_the_paused_work_out_of_energy_and_power(fake_cuda):
    factory = fake_cuda()
    sampler = probe.TelemetrySampler("cuda:0", interval_s=0.005)
    nv = factory.last.nvml_fake
    sampler.start()
    time.sleep(0.1)
    sampler.pause()
    nv.set_power(900.0)     # untimed work at 900 W
    time.sleep(0.1)
    nv.set_power(300.0)
    sampler.resume()
    time.sleep(0.1)
    s = sampler.stop()
    assert s["mean_power_w"] == pytest.approx(300.0, rel=0.02)   # 500 W had the pause been counted
    assert s["excluded_s"] == pytest.approx(0.1, abs=0.03) and s["window_s"] == pytest.approx(0.2, abs=0.05)
    assert s["energy_j"] == pytest.approx(300.0 * s["window_s"], rel=0.02)


def test_probe_fake_gpu_ceilings_are_timed_with_events_over_back_to_back_calls(fake_cuda):
    factory = fake_cuda(event_factor=0.5)
    c = probe.measure_ceilings("cuda:0", "fp32")
    assert c["gemm_shape"] == [128, 128, 128] and c["copy_bytes"] == 1 << 20
    assert "CUDA events" in c["timing_method"] and "back-to-back" in c["timing_method"]
    assert c["gemm_samples"] == probe.GPU_SAMPLES and c["copy_samples"] == probe.GPU_SAMPLES
    assert "reset_memory" in factory.last.calls
    info = probe.probe_device("cuda:0")
    assert info["compute_mode"] == "default" and info["telemetry_available"] is True


def test_probe_resolve_device_sees_the_fake_gpu_and_refuses_a_missing_index(fake_cuda):
    fake_cuda(device_count=1)
    assert probe.resolve_device("auto") == "cuda:0" and probe.resolve_device("cuda") == "cuda:0"
    with pytest.raises(UserError, match="only 1 CUDA device"):
        probe.resolve_device("cuda:1")


@pytest.mark.slow
def test_probe_host_cpu_monitor_sees_a_busy_neighbour():
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
