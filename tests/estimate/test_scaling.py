"""estimate training at K accelerators: the communication term, its bandwidth and overlap, the notes that say
what it rests on, and refusals in one line."""

from __future__ import annotations

import pandas as pd
import pytest

from llmecon.calibration.document import CommunicationFit
from llmecon.calibration.fit import fit_calibration
from llmecon.costmodel import communication as cc
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.estimate.training import estimate_training

FLAT = dict(tokens="1B", hardware="a100-sxm4-40gb", usd_per_hour="2", mfu="0.4", seq_len=2048, batch_size=4)


def test_scaling_ddp_inside_a_node_uses_half_the_nvlink_total():
    out = estimate_training("llama-3-8b", num_accelerators=8, **FLAT)
    c = out["communication"]
    shape = load_model_shape("llama-3-8b")
    assert c["bytes_by_op"] == {"all_reduce": 4.0 * shape.params_total}
    assert c["busbw_bytes_per_s"] == 300e9 and "nvlink" in c["busbw_source"]
    assert c["comm_time_s"] == pytest.approx(4.0 * shape.params_total * 2 * 7 / 8 / 300e9)
    assert c["step_time_s"] == pytest.approx(c["compute_time_s"] + c["comm_time_s"])   # overlap 0
    assert out["mfu"] == pytest.approx(0.4 * c["compute_time_s"] / c["step_time_s"])
    assert "no multi-device measurement: datasheet bandwidth, overlap 0" in " ".join(out["notes"])
    one = estimate_training("llama-3-8b", num_accelerators=1, **FLAT)
    assert one["communication"] is None and one["mfu"] == 0.4
    assert out["accelerator_hours"] == pytest.approx(one["accelerator_hours"] * 0.4 / out["mfu"])


def test_scaling_across_nodes_uses_the_network_and_busbw_replaces_the_datasheet():
    out = estimate_training("llama-3-8b", num_accelerators=16, parallel="fsdp", **FLAT)
    assert out["communication"]["busbw_bytes_per_s"] == 25e9 and "network" in out["communication"]["busbw_source"]
    measured = estimate_training("llama-3-8b", num_accelerators=16, parallel="fsdp", busbw="100", **FLAT)
    assert measured["communication"]["busbw_bytes_per_s"] == 100e9
    assert measured["communication"]["comm_share"] < out["communication"]["comm_share"]


def test_scaling_tp_splits_the_compute_and_checks_the_heads():
    out = estimate_training("llama-3-8b", num_accelerators=8, parallel="tp", **FLAT)
    one = estimate_training("llama-3-8b", num_accelerators=1, **FLAT)
    step_one = one["flops_per_token"] * 4 * 2048 / (312e12 * 0.4)
    assert out["communication"]["compute_time_s"] == pytest.approx(step_one / 8)
    with pytest.raises(UserError, match="KV heads \\(8\\) to be a multiple of 16"):
        estimate_training("llama-3-8b", num_accelerators=16, parallel="tp", **FLAT)


def test_scaling_accelerators_without_link_figures_keep_perfect_scaling_and_say_so():
    out = estimate_training("gpt3-175b", tokens="300B", hardware="tpu-v4", usd_per_hour=2.03, mfu=0.462,
                            num_accelerators=4096)
    assert out["communication"] is None and out["mfu"] == 0.462
    assert any("tpu-v4 has no link bandwidth" in n for n in out["notes"])


@pytest.mark.parametrize("options, message", [({"num_accelerators": 0}, "--num-accelerators"),
                                              ({"parallel": "zero", "num_accelerators": 2}, "unknown --parallel"),
                                              ({"parallel": "tp", "num_accelerators": 3}, "multiple of 3")])
def test_scaling_bad_input_is_one_line(options, message):
    with pytest.raises(UserError, match=message) as err:
        estimate_training("llama-3-8b", **{**FLAT, **options})
    assert "\n" not in str(err.value)


def test_scaling_calibrated_overlap_and_beyond_measured(plant):
    calib = fit_calibration(plant.frame(phases=("train",), seqs=(8, 32, 128), batches=(1, 2, 4, 8), seed=1))
    hw = calib.fits[0].hardware
    fit = CommunicationFit(hardware=hw, parallel="ddp", overlap=0.5, overlap_unclipped=0.5, n_points=3,
                           world_sizes=[2, 4, 8], nnodes=[1], median_rel_error=0.01, max_rel_error=0.02)
    calib = calib.model_copy(update={"communication": [fit]})
    common = dict(tokens="1B", calibration=calib, usd_per_hour="1", seq_len=32, batch_size=4, busbw="1")
    inside = estimate_training("tiny", num_accelerators=8, **common)
    c = inside["communication"]
    assert c["overlap"] == 0.5 and c["exposed_comm_time_s"] == pytest.approx(0.5 * c["comm_time_s"])
    assert not any("beyond" in n for n in inside["notes"])
    beyond = estimate_training("tiny", num_accelerators=16, **common)
    assert "K = 16 is beyond what was measured (largest world size 8)." in beyond["notes"]
    fsdp = estimate_training("tiny", num_accelerators=4, parallel="fsdp", **common)
    assert fsdp["communication"]["overlap"] == 0 and any("no multi-device measurement: measured --busbw" in n
                                                          for n in fsdp["notes"])
