"""What bench puts into a record: the work (built and full model) and how measured time is extrapolated."""

from __future__ import annotations

import pytest

from llmecon.costmodel.flops import decode_flops, decode_step_flops, prefill_flops, train_step_flops
from llmecon.costmodel.memory import decode_bytes
from llmecon.measure.models import built_shape
from llmecon.measure.record import base_record, time_scale, work_block
from llmecon.measure.timing import DEFAULT_KNOBS
from llmecon.records.schema import SCHEMA_VERSION, Record
from llmecon.vocab import CONVENTIONS

CFG = {"config_id": "c", "model": "llama-3-8b", "phase": "train", "batch_size": 1, "seq_len": 2048,
       "new_tokens": None, "dtype": "bf16", "device": "cuda:0", "attn_implementation": "sdpa", "compile": False,
       "static_cache": False, "layers": 8, "activation_checkpointing": False, "weights": "random"}


def _record(cfg, shape, full):
    return base_record(cfg, shape, full, status="error", reasons=["x"], knobs=DEFAULT_KNOBS["cuda"])


def test_record_layers_hold_full_model_work_and_a_work_ratio_time_scale():
    shape, full = built_shape("llama-3-8b", 8)  # the 128k-vocab LM head runs once, not 4 times
    rec = _record(CFG, shape, full)
    assert rec["model"]["layer_scale"] == 4.0
    assert rec["work"]["full_model"]["flops_per_step"] == {c: train_step_flops(full, 1, 2048, c) for c in CONVENTIONS}
    assert rec["work"]["flops_per_step"]["executed"] == train_step_flops(shape, 1, 2048, "executed")
    ratio = train_step_flops(full, 1, 2048, "executed") / train_step_flops(shape, 1, 2048, "executed")
    assert rec["model"]["time_scale"] == ratio and 3.2 < ratio < 3.5  # L/k = 4 would overstate by ~20 %
    assert "executed FLOPs" in rec["model"]["extrapolation_basis"]
    dec = _record({**CFG, "phase": "decode", "new_tokens": 4}, shape, full)
    assert rec["work"]["full_model"]["bytes_per_step"] is None
    assert dec["work"]["full_model"]["bytes_per_step"] == decode_bytes(full, "bf16", 1, 2048, 4) / 4
    assert dec["model"]["time_scale"] == pytest.approx(decode_bytes(full, "bf16", 1, 2048, 4)
                                                       / decode_bytes(shape, "bf16", 1, 2048, 4))
    assert "bytes read" in dec["model"]["extrapolation_basis"]
    whole = _record({**CFG, "layers": None}, full, full)
    assert whole["model"]["time_scale"] == 1.0
    assert whole["work"]["full_model"]["flops_per_step"] == whole["work"]["flops_per_step"]


def test_record_base_record_is_a_valid_record():
    shape, full = built_shape("tiny", None)
    rec = _record({**CFG, "model": "tiny", "layers": None}, shape, full)
    doc = Record.model_validate({"schema_version": SCHEMA_VERSION, "run_id": "r", "created_utc": "now", **rec})
    assert doc.status == "error" and doc.reasons == ["x"] and doc.measure == DEFAULT_KNOBS["cuda"]


def test_record_activation_checkpointing_counts_hardware_flops_not_model_flops():
    shape, _ = built_shape("tiny", None)
    plain = work_block(shape, "train", 2, 16, None, "fp32")
    ckpt = work_block(shape, "train", 2, 16, None, "fp32", activation_checkpointing=True)
    assert ckpt["flops_per_step"] == plain["flops_per_step"]  # MFU does not change
    assert ckpt["hardware_flops_per_step"] == pytest.approx(plain["flops_per_step"]["executed"] * 4 / 3)


def test_record_time_scale_is_the_ratio_of_the_dominant_work():
    """Executed FLOPs for prefill and train (compute-bound), bytes read for decode (memory-bound)."""
    built = {"flops_per_step": {"executed": 2.0, "article": 1.0}, "bytes_per_step": 10.0}
    full = {"flops_per_step": {"executed": 7.0, "article": 100.0}, "bytes_per_step": 25.0}
    assert time_scale("prefill", built, full) == 3.5 and time_scale("train", built, full) == 3.5
    assert time_scale("decode", built, full) == 2.5


def test_record_generate_work_is_one_request_prefill_plus_new_tokens_minus_one_steps():
    """P = 16 prompt tokens, O = 4 output tokens, batch 2: 8 generated tokens; FLOPs the prefill plus 3 decode steps
    attending 17, 18, 19 positions; bytes those 3 steps'; --layers extrapolates by their bytes."""
    shape, full = built_shape("llama-3-8b", 8)
    work = work_block(full, "generate", 2, 16, 4, "bf16")
    assert work["tokens_per_step"] == 8
    for c in CONVENTIONS:
        steps = sum(decode_step_flops(full, 2, 16 + k, c) for k in (1, 2, 3))
        assert work["flops_per_step"][c] == pytest.approx(prefill_flops(full, 2, 16, c) + steps)
        assert work["flops_per_step"][c] == prefill_flops(full, 2, 16, c) + decode_flops(full, 2, 16, 3, c)
    assert work["bytes_per_step"] == decode_bytes(full, "bf16", 2, 16, 3)
    rec = _record({**CFG, "phase": "generate", "batch_size": 2, "seq_len": 16, "new_tokens": 4}, shape, full)
    assert rec["work"]["full_model"]["bytes_per_step"] == work["bytes_per_step"]
    assert rec["model"]["time_scale"] == pytest.approx(work["bytes_per_step"] / decode_bytes(shape, "bf16", 2, 16, 3))
    assert "decode steps" in rec["model"]["extrapolation_basis"]
