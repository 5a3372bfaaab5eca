"""measure.commcount: which dispatched ops count as which collective, with the nccl-tests full-buffer bytes, and
the counts of a DDP step, an FSDP2 step and a tensor-parallel prefill of the tiny preset on 2 gloo ranks."""

from __future__ import annotations

import pytest
import torch
import torch.distributed._functional_collectives  # noqa: F401  (registers the c10d and functional ops)

from llmecon.measure.commcount import CollectiveCounter, classify

F32 = 4


def test_classify_all_gather_counts_the_output():
    out, inp = torch.empty(64), torch.empty(32)
    assert classify(torch.ops.c10d._allgather_base_.default, (out, inp, None, True), {}, (out, None)) == (
        "all_gather", 64 * F32)
    assert classify(torch.ops._c10d_functional.all_gather_into_tensor.default, (inp, 2, "g"), {}, out) == (
        "all_gather", 64 * F32)


def test_classify_reduce_scatter_counts_the_input():
    out, inp = torch.empty(32), torch.empty(64)
    assert classify(torch.ops.c10d._reduce_scatter_base_.default, (out, inp, None, None, True), {}, (out, None)) == (
        "reduce_scatter", 64 * F32)
    assert classify(torch.ops._c10d_functional.reduce_scatter_tensor.default, (inp, "sum", 2, "g"), {}, out) == (
        "reduce_scatter", 64 * F32)


def test_classify_all_reduce_broadcast_and_p2p_count_the_buffer():
    a, b = torch.empty(10), torch.empty(6, dtype=torch.bfloat16)
    assert classify(torch.ops.c10d.allreduce_.default, ([a, b], None, None, None), {}, None) == ("all_reduce", 52)
    assert classify(torch.ops._c10d_functional.all_reduce.default, (a, "sum", "g"), {}, a) == ("all_reduce", 40)
    assert classify(torch.ops.c10d.broadcast_.default, ([b], None, 0, 0), {}, None) == ("broadcast", 12)
    assert classify(torch.ops.c10d.send.default, ([a], None, 1, 0), {}, None) == ("send_recv", 40)


def test_classify_ignores_wrappers_and_compute():
    a = torch.empty(4)
    assert classify(torch.ops._c10d_functional.wait_tensor.default, (a,), {}, a) is None
    assert classify(torch.ops._c10d_functional._wrap_tensor_autograd.default, (a,), {}, a) is None
    assert classify(torch.ops.aten.add.Tensor, (a, a), {}, a) is None


def test_classify_keeps_an_unknown_collective_without_bytes():
    a = torch.empty(4)
    assert classify(torch.ops.c10d.gather_.default, ([[a]], [a], None, 0), {}, None) == ("c10d.gather_", None)


def test_collective_counter_counts_nothing_in_plain_compute():
    with CollectiveCounter() as counter:
        torch.ones(8).mul(2).sum()
    assert counter.counts() == {}


@pytest.fixture(scope="module")
def ranks(two_ranks):
    return two_ranks("commcount")


@pytest.mark.slow
def test_collective_counter_same_counts_on_both_ranks(ranks):
    assert ranks[0] == ranks[1]


@pytest.mark.slow
def test_collective_counter_ddp_all_reduces_every_parameter(ranks):
    ddp = ranks[0]["ddp"]
    assert ddp["counts"]["all_reduce"]["bytes"] == ddp["param_bytes"]  # 558336 B on the tiny preset
    assert ddp["counts"]["broadcast"] == {"calls": 1, "bytes": ddp["buffer_bytes"]}  # buffers synced in forward
    assert set(ddp["counts"]) == {"all_reduce", "broadcast"}


@pytest.mark.slow
def test_collective_counter_fsdp2_gathers_outputs_and_scatters_inputs(ranks):
    fsdp = ranks[0]["fsdp"]
    layers = len(fsdp["layer_bytes"])
    # forward gathers the root's and every layer's parameters; backward re-gathers the layers (resharded after
    # forward); each FSDP group reduce-scatters its full gradient once. No padding: the tiny dims are even.
    assert fsdp["counts"]["all_gather"] == {"calls": 1 + 2 * layers,
                                            "bytes": fsdp["param_bytes"] + sum(fsdp["layer_bytes"])}
    assert fsdp["counts"]["reduce_scatter"] == {"calls": 1 + layers, "bytes": fsdp["param_bytes"]}
    assert set(fsdp["counts"]) == {"all_gather", "reduce_scatter"}


@pytest.mark.slow
def test_collective_counter_tp_all_reduces_each_rowwise_output(ranks):
    tp = ranks[0]["tp"]
    rowwise = sum(style == "rowwise" for style in tp["plan"].values())  # o_proj and down_proj: 2 per layer
    assert rowwise == 2
    activation = tp["batch"] * tp["seq"] * tp["hidden"] * F32
    assert tp["counts"] == {"all_reduce": {"calls": rowwise * tp["layers"],
                                           "bytes": rowwise * tp["layers"] * activation}}
