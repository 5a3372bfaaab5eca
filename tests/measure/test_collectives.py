"""measure.collectives: the nccl-tests bus-bandwidth factors, and all-reduce / all-gather timed on 2 gloo ranks."""

from __future__ import annotations

import statistics

import pytest

from llmecon.errors import UserError
from llmecon.costmodel.communication import bus_factor as busbw_factor
from llmecon.measure.collectives import NCCL_TESTS_PERFORMANCE, measure_collectives


@pytest.mark.parametrize("op,n,factor", [
    ("all_reduce", 2, 1.0), ("all_reduce", 4, 1.5), ("all_reduce", 8, 1.75), ("all_reduce", 1, 0.0),
    ("all_gather", 2, 0.5), ("all_gather", 8, 0.875), ("reduce_scatter", 4, 0.75), ("all_to_all", 8, 0.875),
    ("broadcast", 8, 1.0), ("reduce", 4, 1.0),
])
def test_busbw_factor_is_nccl_tests_correction(op, n, factor):
    assert busbw_factor(op, n) == factor


@pytest.mark.parametrize("op,n", [("allreduce", 2), ("all_reduce", 0), ("all_gather", 2.0)])
def test_busbw_factor_rejects_unknown_op_or_world(op, n):
    with pytest.raises(UserError):
        busbw_factor(op, n)


def test_measure_collectives_needs_a_process_group():
    with pytest.raises(UserError, match="initialised process group"):
        measure_collectives("cpu", "fp32")


@pytest.fixture(scope="module")
def ranks(two_ranks):
    return two_ranks("collectives")


@pytest.mark.slow
def test_measure_collectives_same_dict_on_both_ranks(ranks):
    assert ranks[0] == ranks[1]


@pytest.mark.slow
def test_measure_collectives_numbers_follow_the_definition(ranks):
    out = ranks[0]["cpu"]
    assert (out["world_size"], out["backend"], out["device_kind"]) == (2, "gloo", "cpu")
    assert out["timing_method"].startswith("host clock") and NCCL_TESTS_PERFORMANCE in out["definition"]
    assert [(r["op"], r["size_bytes"]) for r in out["results"]] == [
        ("all_reduce", 64 << 10), ("all_reduce", 256 << 10), ("all_gather", 64 << 10), ("all_gather", 256 << 10)]
    for r in out["results"]:
        assert len(r["time_s_by_rank"]) == 2 and all(0 < t < 1 for t in r["time_s_by_rank"])
        assert r["time_s"] == pytest.approx(statistics.fmean(r["time_s_by_rank"]))
        assert r["algbw_bytes_per_s"] == pytest.approx(r["size_bytes"] / r["time_s"])
        assert r["busbw_bytes_per_s"] == pytest.approx(r["algbw_bytes_per_s"] * busbw_factor(r["op"], 2))


@pytest.mark.slow
def test_measure_collectives_times_with_events_on_cuda(ranks):
    out = ranks[0]["fake_cuda"]
    assert out["device_kind"] == "cuda" and out["timing_method"].startswith("CUDA events around 2 ")
    assert all(r["time_s"] > 0 for r in out["results"])
