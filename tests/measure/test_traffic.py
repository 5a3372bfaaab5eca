"""Counting the bytes each operator reads and writes (measure/traffic.py), and one decode step of the tiny model
over each cache path against the MBU numerator."""

from __future__ import annotations

import pytest
import torch

from llmecon.costmodel.memory import (
    decode_step_bytes,
    decode_weight_bytes_read,
    kv_cache_bytes_per_token,
)
from llmecon.measure.traffic import (
    CACHE_PATHS,
    count_traffic,
    decode_step_traffic,
    span_bytes,
)

F32 = 4


def test_traffic_matmul_reads_both_operands_and_writes_the_product():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    t = count_traffic(lambda: a @ b)
    assert (t.read_bytes, t.written_bytes) == ((8 * 16 + 16 * 4) * F32, 8 * 4 * F32)


def test_traffic_views_and_returned_inputs_move_nothing():
    x = torch.randn(4, 6)
    t = count_traffic(lambda: (x.view(6, 4), x.t(), x[1:], x.unsqueeze(0).expand(3, 4, 6), x.to(torch.float32),
                               x.reshape(24)))
    assert (t.read_bytes, t.written_bytes) == (0, 0) and t.calls >= 6


def test_traffic_reshape_of_an_expanded_tensor_is_a_copy_of_its_logical_size():
    k = torch.randn(1, 2, 10, 8)   # repeat_kv: expand each KV head to 3 query heads, then reshape (copies)
    t = count_traffic(lambda: k[:, :, None].expand(1, 2, 3, 10, 8).reshape(1, 6, 10, 8))
    assert t.read_bytes == k.numel() * F32            # the expanded source spans the original once
    assert t.written_bytes == 3 * k.numel() * F32


def test_traffic_in_place_fill_copy_and_indexed_write():
    x, y = torch.zeros(100), torch.randn(100)
    assert count_traffic(lambda: x.add_(y)).read_bytes == 200 * F32           # read-modify-write
    assert count_traffic(lambda: x.add_(y)).written_bytes == 100 * F32
    assert (count_traffic(lambda: x.zero_()).read_bytes, count_traffic(lambda: x.zero_()).written_bytes) == (0, 400)
    c = count_traffic(lambda: x.copy_(y))
    assert (c.read_bytes, c.written_bytes) == (400, 400)
    cache, new, pos = torch.zeros(1, 2, 50, 8), torch.randn(1, 2, 1, 8), torch.tensor([7])
    w = count_traffic(lambda: cache.index_copy_(2, pos, new))   # a static cache's write: one position
    assert w.written_bytes == new.numel() * F32 and w.read_bytes == new.numel() * F32 + 8


def test_traffic_lookup_reads_rows_not_the_table():
    table, ids = torch.randn(1000, 16), torch.tensor([[3, 5]])
    t = count_traffic(lambda: torch.nn.functional.embedding(ids, table), groups={"table": [table]})
    assert t.written_bytes == 2 * 16 * F32 and t.read_bytes == 2 * 16 * F32 + 16   # rows + int64 indices
    assert t.read_by_group["table"] == 2 * 16 * F32


def test_traffic_cat_reads_its_inputs_and_writes_the_result_and_groups_attribute_reads():
    old, new = torch.randn(1, 2, 30, 8), torch.randn(1, 2, 1, 8)
    t = count_traffic(lambda: torch.cat([old, new], dim=2), groups={"cache": [old]})
    assert (t.read_bytes, t.written_bytes) == ((30 + 1) * 16 * F32, 31 * 16 * F32)
    assert t.read_by_group["cache"] == 30 * 16 * F32 and t.by_operator()[0][0] == "aten.cat"


def test_traffic_span_counts_a_broadcast_dimension_once():
    x = torch.randn(5, 1).expand(5, 7)
    assert span_bytes(x) == 5 * F32 and span_bytes(torch.empty(0, 3)) == 0


@pytest.mark.slow
def test_traffic_of_one_tiny_decode_step_over_each_cache_path():
    from llmecon.measure.models import build_model

    B, ctx = 2, 40
    built = build_model("tiny", device="meta", dtype="fp32")
    shape, kvpt = built.shape, kv_cache_bytes_per_token(built.shape, "fp32")
    n_rep = shape.hf_config["num_attention_heads"] // shape.hf_config["num_key_value_heads"]
    t = {p: decode_step_traffic(built, B, ctx, p) for p in CACHE_PATHS}
    mbu = decode_step_bytes(shape, "fp32", B, ctx + 1)
    for p in CACHE_PATHS:   # the MBU numerator's weight term is exactly what the step reads from the weights
        assert t[p].read_by_group["weights"] == decode_weight_bytes_read(shape, "fp32", B)
        assert t[p].total_bytes > mbu
    cat = {p: (t[p].read_by_op["aten.cat"], t[p].written_by_op["aten.cat"]) for p in ("dynamic", "static")}
    # the dynamic cache copies every layer's keys and values into a new tensor: read the cache + the new position,
    # write both (the static path's cats are the rotary embedding's alone, as are the dynamic path's others)
    assert cat["dynamic"][0] - cat["static"][0] == B * (ctx + 1) * kvpt
    assert cat["dynamic"][1] - cat["static"][1] == B * (ctx + 1) * kvpt
    # the static cache writes one position
    assert t["static"].written_by_op["aten.index_copy_"] == B * kvpt
    # compiled, repeat_kv reads the whole static cache (ctx + 1 positions here) and writes it n_rep times
    assert t["static-compiled"].read_by_op["aten.reshape"] >= B * (ctx + 1) * kvpt
    assert t["static-compiled"].written_by_op["aten.reshape"] >= n_rep * B * (ctx + 1) * kvpt
    assert "aten.reshape" not in t["static"].written_by_op
    # shapes are all that matter: the meta device counts what real tensors count
    real = build_model("tiny", device="cpu", dtype="fp32")
    for p in CACHE_PATHS:
        assert decode_step_traffic(real, B, ctx, p).total_bytes == t[p].total_bytes, p
