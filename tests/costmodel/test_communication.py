"""The communication model: the tiny preset's bytes as measured on 2 ranks, nccl-tests' bus factors, the
hierarchical bandwidth, the step time, and refusals."""

from __future__ import annotations

import pytest

from llmecon.costmodel import communication as cm
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError

TINY = load_model_shape("tiny")


def test_comm_ddp_all_reduces_every_fp32_gradient():
    assert cm.ddp_step_bytes(TINY) == {"all_reduce": 558336.0} == {"all_reduce": TINY.params_total * 4.0}


def test_comm_fsdp_reproduces_the_bytes_measured_on_tiny_with_2_ranks():
    """Measured (fp32, 2 ranks): forward+backward all-gather 854,272 B, reduce-scatter input 558,336 B."""
    assert cm.fsdp_step_bytes(TINY) == {"all_gather": 854272.0, "reduce_scatter": 558336.0}
    assert cm.fsdp_root_params(TINY) == 512 * 64 * 2 + 64   # embedding + untied head + final norm


def test_comm_tp_prefill_is_two_all_reduces_per_layer_of_b_t_h():
    """tiny, fp32, batch 2 x seq 32: 2 layers x 2 all-reduces of 2 x 32 x 64 x 4 B."""
    assert cm.tp_step_bytes(TINY, 2, 32, "fp32", "prefill") == {"all_reduce": 4 * 16384.0}
    assert cm.tp_step_bytes(TINY, 2, 128, "fp32", "prefill") == {"all_reduce": 4 * 65536.0}
    assert cm.step_bytes(TINY, "tp", batch_size=2, seq_len=32, dtype="fp32", phase="train") == \
        {"all_reduce": 8 * 16384.0}
    assert cm.step_bytes(TINY, "tp", batch_size=2, seq_len=32, dtype="bf16", phase="decode") == \
        {"all_reduce": 4 * 2 * 64 * 2.0}


def test_comm_pipeline_bytes_and_bubble():
    assert cm.pipeline_step_bytes(TINY, 1, 32, 8, "bf16") == {"send_recv": 2 * 8 * 32 * 64 * 2.0}
    assert cm.pipeline_bubble_fraction(16, 192) == pytest.approx(15 / 192)
    assert cm.pipeline_bubble_fraction(1, 4) == 0


@pytest.mark.parametrize("op, n, factor", [("all_reduce", 2, 1.0), ("all_reduce", 8, 1.75),
                                           ("all_gather", 8, 0.875), ("reduce_scatter", 4, 0.75),
                                           ("send_recv", 2, 1.0), ("all_reduce", 1, 0.0)])
def test_comm_nccl_tests_bus_factors(op, n, factor):
    assert cm.bus_factor(op, n) == pytest.approx(factor)


def test_comm_collective_time_inverts_busbw():
    """busbw = S / t x 2(n-1)/n: 1 GB all-reduced over 8 ranks at a busbw of 175 GB/s takes 10 ms."""
    assert cm.collective_time_s("all_reduce", 1e9, 8, 175e9) == pytest.approx(0.01)
    assert cm.comm_time_s({"all_gather": 8e9, "reduce_scatter": 8e9}, 8, {"all_gather": 70e9,
                                                                         "reduce_scatter": 35e9}) == \
        pytest.approx(0.1 + 0.2)


def test_comm_hierarchical_bandwidth_nvlink_inside_a_node_network_across():
    a100 = dict(gpus_per_node=8, nvlink_bytes_per_s=600e9, network_bytes_per_s=25e9)
    assert cm.link_bus_bytes_per_s(8, 1, **a100) == (300e9, "nvlink")
    assert cm.link_bus_bytes_per_s(16, 1, **a100) == (25e9, "network")
    # TP 8 inside the node, DP across nodes: the DP group has stride 8
    assert cm.link_bus_bytes_per_s(2, 8, **a100) == (25e9, "network")
    assert cm.link_bus_bytes_per_s(2, 4, **a100) == (300e9, "nvlink")


def test_comm_missing_link_bandwidth_asks_for_busbw():
    with pytest.raises(UserError, match="--busbw"):
        cm.link_bus_bytes_per_s(16, 1, 8, 600e9, None)


def test_comm_step_time_adds_the_exposed_share_and_the_bubble():
    assert cm.step_time_s(1.0, 0.5) == 1.5
    assert cm.step_time_s(1.0, 0.5, overlap=0.6) == pytest.approx(1.2)
    assert cm.step_time_s(1.0, 0.5, overlap=1.0, bubble_fraction=0.25) == 1.25
    with pytest.raises(UserError):
        cm.step_time_s(1.0, 0.5, overlap=1.5)


def test_comm_refusals_are_one_line():
    with pytest.raises(UserError, match="unknown --parallel 'zero'"):
        cm.check_parallel("zero")
    with pytest.raises(UserError, match="KV heads \\(2\\) to be a multiple of 4"):
        cm.check_tp_degree(TINY, 4)
    with pytest.raises(UserError, match="train step only"):
        cm.step_bytes(TINY, "ddp", batch_size=1, seq_len=8, dtype="fp32", phase="decode")
    with pytest.raises(UserError, match="unknown collective"):
        cm.bus_factor("scatter", 2)


def test_comm_three_d_layout_must_divide():
    with pytest.raises(UserError, match="layout does not divide"):
        cm.three_d_step(TINY, tp=1, pp=3, dp=1, global_batch=4, microbatch=1, seq_len=8, dtype="bf16",
                        compute_s=1.0, gpus_per_node=8, nvlink_bytes_per_s=600e9, network_bytes_per_s=25e9)
