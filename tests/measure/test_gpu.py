"""GPU checks (skipped without CUDA): the device's own ceilings are sane, and a bf16 bench gives valid rows."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_gpu_probe_and_ceilings_are_sane():
    from llmecon.measure.probe import measure_ceilings, probe_device

    info = probe_device("cuda:0")
    assert info["kind"] == "cuda" and info["memory_bytes"] > 1 << 30
    assert info["telemetry_available"] or info["telemetry_reason"]
    assert info["compute_mode"] is not None or not info["telemetry_available"]
    c = measure_ceilings("cuda:0", "bf16")
    assert c["gemm_shape"] == [8192, 8192, 8192] and "CUDA events" in c["timing_method"]
    assert 1e13 < c["gemm_flops_per_s"] < 5e15  # tens of TFLOP/s to a few PFLOP/s
    assert 1e11 < c["copy_bytes_per_s"] < 2e13  # 100 GB/s to 20 TB/s


def test_gpu_bf16_bench_of_tiny_on_cuda_gives_valid_rows(tmp_path):
    from click.testing import CliRunner

    from llmecon.cli import main

    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--device", "cuda", "--dtype", "bf16",
                                       "--batch-size", "1,4", "--seq-len", "64", "--new-tokens", "8",
                                       "--min-iters", "5", "--min-time", "0.1", "--rounds", "2", "--out", str(tmp_path),
                                       "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["rows"]) == 6
    for row in payload["rows"]:
        assert row["status"] == "ok", row
        assert 0 < row["mfu_executed_vs_ceiling"] <= 1
        assert row["peak_memory_bytes"] > 0 and row["n_rounds"] == 2
        # the operator calls of one step, and the kernels the profiler saw (null only with a reason)
        assert row["aten_ops_per_step"] > 0
        assert row["cuda_kernels_per_step"] is None or row["cuda_kernels_per_step"] > 0
        # the device's own clock beside the host's: the events' span cannot exceed the host time by much
        assert 0 < row["device_step_s"] <= 1.1 * row["step_time_s"]
        assert row["launch_bound"] in (True, False) or row["cuda_kernels_per_step"] is None
