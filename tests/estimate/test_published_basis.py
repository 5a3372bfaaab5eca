"""Estimates given neither --mfu nor --calibration rest on a published reference: the step time depends on batch and
context, the result says which points and sources it rests on, and a transfer is labelled."""

from __future__ import annotations

import pytest

from llmecon.calibration import reference
from llmecon.calibration.published import write_shipped
from llmecon.estimate.inference import estimate_inference
from llmecon.estimate.training import estimate_training

from llmecon_test_published_points import ENGINE, TRUE, decode_point, sheet

TRAIN = [{"phase": "train", "accelerator_count": 8, "batch_size": b, "seq_len": s, "value": v, "unit": "%MFU"}
         for b, s, v in ((16, 4096, 40), (32, 8192, 42), (64, 2048, 38), (8, 16384, 41))]


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    points = [decode_point(b, c) for b, c in ((1, 128), (8, 1024), (32, 2048), (64, 4096))] + TRAIN
    return write_shipped(tmp / "refs.json", [sheet(tmp, points)])


@pytest.fixture(autouse=True)
def refs(reference_file, monkeypatch):
    monkeypatch.setenv(reference.ENV_VAR, str(reference_file))


def infer(**kw):
    return estimate_inference("llama-2-7b", hardware="h100-sxm", usd_per_hour=2.5, engine=ENGINE, **kw)


def test_published_inference_depends_on_the_batch_and_names_its_basis():
    one, many = infer(batch_size=1), infer(batch_size=32)
    assert one["basis"] == many["basis"] == "published" and one["engine"] == ENGINE
    assert one["usd_per_1m_tokens"] > 5 * many["usd_per_1m_tokens"]
    assert one["regime"] == "memory-bound"
    for out in (one, many):   # the fit is the model that made the points: its prediction is theirs
        t, _ = TRUE["decode"].step_time_s(out["flops_per_step"], out["bytes_per_step"])
        assert out["step_time_s"] == pytest.approx(t, rel=1e-5)
        assert out["tokens_per_s"] == pytest.approx(out["batch_size"] / t, rel=1e-5)
    assert one["points"] == 4 and one["sources"] == ["https://example.org/a"] and len(one["point_ids"]) == 4
    assert one["notes"][0].startswith("Published reference") and not one["transferred"]


def test_published_inference_on_another_accelerator_is_transferred_and_says_so():
    out = estimate_inference("llama-2-7b", hardware="h200", usd_per_hour=3.5, engine=ENGINE, batch_size=4)
    assert out["transferred"] and "transferred to h200" in out["reference"]
    assert any(n.startswith("TRANSFERRED") for n in out["notes"])


def test_published_training_uses_the_train_fit_at_scale():
    out = estimate_training("llama-2-7b", tokens="1T", hardware="h100-sxm", usd_per_hour=2.5, engine=ENGINE,
                            seq_len=4096, batch_size=2)
    assert out["basis"] == "published" and out["convention"] == "executed"
    assert 0.3 < out["mfu"] < 0.5 and out["points"] == 4


def test_engine_with_a_flat_mfu_is_refused():
    with pytest.raises(Exception, match="--engine picks a published reference"):
        infer(mfu=0.3)


def test_builtin_reference_prices_llama_3_8b_on_an_h100_by_batch(monkeypatch):
    """The issue's question: serving llama-3-8b on an H100 at batch 1 and at batch 32, from the built-in published
    points alone (no --mfu, no --calibration)."""
    monkeypatch.delenv(reference.ENV_VAR)
    one, many = (estimate_inference("llama-3-8b", hardware="h100-sxm", price="lambda-h100-sxm-od-2025", batch_size=b)
                 for b in (1, 32))
    assert one["basis"] == many["basis"] == "published"
    assert one["usd_per_1m_tokens"] > 5 * many["usd_per_1m_tokens"]
    assert one["sources"] and all(s.startswith("https://") for s in one["sources"]) and one["points"] >= 3
    assert one["reference"].startswith(f"published {one['engine']} points on h100-sxm")
