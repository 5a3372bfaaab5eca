"""Choosing a published reference: the engine asked for, else the one with the most points on that accelerator;
a fit in the preferred dtype first; the nearest accelerator by datasheet peaks, transferred and labelled, where
none was measured; one line where nothing applies."""

from __future__ import annotations

import pytest

from llmecon.calibration import reference
from llmecon.calibration.published import write_shipped
from llmecon.errors import UserError

from llmecon_test_published_points import ENGINE, decode_point, sheet

SHAPES = ((1, 128), (8, 1024), (32, 2048), (64, 4096))


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    """Decode points of the synthetic engine on an h100-sxm (bf16: 4, fp8: 5) and an a100-sxm4-80gb (bf16: 3)."""
    tmp = tmp_path_factory.mktemp("ref")
    points = [decode_point(b, c) for b, c in SHAPES]
    points += [decode_point(b, c) | {"dtype": "fp8"} for b, c in SHAPES + ((16, 256),)]
    points += [decode_point(b, c) | {"accelerator_id": "a100-sxm4-80gb"} for b, c in SHAPES[:3]]
    return write_shipped(tmp / "refs.json", [sheet(tmp, points)])


@pytest.fixture
def refs(reference_file, monkeypatch):
    monkeypatch.setenv(reference.ENV_VAR, str(reference_file))


def test_choose_own_accelerator_prefers_the_preferred_dtype_then_the_most_points(refs):
    bf16 = reference.choose("h100-sxm", "decode", engine=ENGINE, preferred_dtype="bf16")
    assert (bf16.fit.dtype, bf16.transferred, bf16.fit.n_rows) == ("bf16", False, 4)
    most = reference.choose("h100-sxm", "decode", engine=ENGINE)
    assert most.fit.dtype == "fp8" and most.fit.n_rows == 5
    assert [f.key for f in most.calibration.fits] == ["h100-sxm fp8 decode"]   # only the chosen fit is applied
    assert "published synthetic-engine points on h100-sxm (fp8 decode): 5 points from 1 source" == most.describe()


@pytest.mark.parametrize("target,source", [("h200", "h100-sxm"), ("a100-sxm4-40gb", "a100-sxm4-80gb"),
                                           ("h100-pcie", "h100-sxm")])
def test_choose_transfers_the_nearest_accelerator_by_datasheet_peaks(refs, target, source):
    ref = reference.choose(target, "decode", dtype="bf16", engine=ENGINE)
    assert ref.transferred and ref.fit.hardware == source and ref.hardware == target
    assert ref.describe().endswith(f"transferred to {target} through the datasheet peaks")


@pytest.mark.parametrize("kwargs,message", [
    ({"hardware": "h100-sxm", "phase": "decode", "engine": "nosuch"}, "no published calibration for engine 'nosuch'"),
    ({"hardware": "h100-sxm", "phase": "prefill", "engine": ENGINE}, "no published prefill of synthetic-engine"),
    ({"hardware": "a100-sxm4-80gb", "phase": "decode", "dtype": "fp8", "engine": ENGINE},
     "none that transfers to it"),
])
def test_choose_refuses_in_one_line(refs, kwargs, message):
    with pytest.raises(UserError, match=message):
        reference.choose(**kwargs)


def test_reference_file_that_is_not_one_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "llmecon-calibration"}')
    monkeypatch.setenv(reference.ENV_VAR, str(bad))
    with pytest.raises(UserError, match="not a file of published reference calibrations"):
        reference.references()
    monkeypatch.setenv(reference.ENV_VAR, str(tmp_path / "missing.json"))
    with pytest.raises(UserError, match="cannot read reference calibrations"):
        reference.references()


def test_builtin_references_are_all_published_with_sources():
    refs = reference.references()
    assert refs and all(c.basis == "published" and c.engine == e for e, c in refs.items())
    assert all(f.sources and all(s.startswith("https://") for s in f.sources) for c in refs.values() for f in c.fits)


def test_a_16_bit_fit_transfers_to_a_target_with_only_the_other_16_bit_peak():
    """TensorRT-LLM's A100 points are fp16; a TPU v4 has a bf16 peak only: priced in bf16, the fit's dtype kept."""
    ref = reference.choose("tpu-v4", "decode", engine="tensorrt-llm")
    assert ref.transferred and ref.fit.dtype == "fp16" and ref.dtype == "bf16"
