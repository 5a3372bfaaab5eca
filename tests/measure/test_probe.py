"""The device probe without CUDA or NVML, telemetry from a fake NVML, and the host monitor."""

from __future__ import annotations

import sys
import types

import pytest

from llmecon.measure import probe


def test_probe_no_nvml_means_null_telemetry_with_reason(monkeypatch):
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


def test_probe_telemetry_sampler_with_fake_nvml(monkeypatch):
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
