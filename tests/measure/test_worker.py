"""The worker measures a model's configurations in interleaved rounds and reports one record per configuration."""

from __future__ import annotations

import pytest

from llmecon.measure.worker import execute
from llmecon.records.schema import SCHEMA_VERSION, Knobs, Record
from llmecon.records.store import make_config_id

pytestmark = pytest.mark.slow   # builds a model


def _cfg(phase: str, batch: int) -> dict:
    cfg = {"model": "tiny", "phase": phase, "batch_size": batch, "seq_len": 16, "new_tokens": 2 if phase == "decode"
           else None, "dtype": "fp32", "device": "cpu", "attn_implementation": "sdpa", "compile": False,
           "static_cache": False, "layers": None, "activation_checkpointing": False, "weights": "random"}
    cfg["config_id"] = make_config_id(cfg, "tiny")
    return cfg


def test_worker_rounds_are_round_robin_and_every_record_keeps_its_rounds():
    configs = [_cfg("prefill", 1), _cfg("decode", 1), _cfg("train", 1)]
    knobs = Knobs(warmup_iters=1, min_iters=2, min_time_s=0.0, max_time_s=2.0, rounds=3)
    events = []
    code = execute({"device": "cpu", "knobs": knobs.model_dump(), "configs": configs, "threads": 1}, events.append)
    assert code == 0
    starts = [(e["config_id"], e["round"]) for e in events if e["event"] == "start"]
    ids = [c["config_id"] for c in configs]
    # prefill and decode share the inference model: interleaved; train runs on its own model afterwards
    assert starts == [(ids[0], 0), (ids[1], 0), (ids[0], 1), (ids[1], 1), (ids[0], 2), (ids[1], 2),
                      (ids[2], 0), (ids[2], 1), (ids[2], 2)]
    passes = [(e["round"], e["n"]) for e in events if e["event"] == "pass"]
    assert passes == [(1, 2), (2, 2), (3, 2), (1, 1), (2, 1), (3, 1)]
    records = [e["record"] for e in events if e["event"] == "record"]
    assert [r["config_id"] for r in records] == ids
    for rec in records:
        doc = Record.model_validate({"schema_version": SCHEMA_VERSION, "run_id": "r", "created_utc": "now", **rec})
        assert doc.status == "ok" and len(doc.timing.rounds) == 3 and doc.measure.rounds == 3
        assert doc.timing.step_s > 0 and doc.timing.spread is not None
        assert doc.work.ops is not None and doc.work.ops.aten_ops_per_step > 0


def test_worker_failure_in_a_later_round_is_a_status_and_ends_the_worker(monkeypatch):
    monkeypatch.setenv("LLMECON_FAULT_OOM_BATCH", "2")
    configs = [_cfg("prefill", 1), _cfg("prefill", 2)]
    events = []
    code = execute({"device": "cpu", "knobs": Knobs(warmup_iters=0, min_iters=1, min_time_s=0.0, max_time_s=1.0,
                                                    rounds=2).model_dump(), "configs": configs}, events.append)
    assert code != 0
    records = [e["record"] for e in events if e["event"] == "record"]
    assert len(records) == 1 and records[0]["status"] == "oom" and records[0]["config"]["batch_size"] == 2
