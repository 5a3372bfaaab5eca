"""The calibration document: a typed object that saves, loads (validated, naming the field), describes itself."""

from __future__ import annotations

import json
import os
import re
import stat

import pandas as pd
import pytest

from llmecon.calibration.document import Calibration
from llmecon.calibration.fit import fit_calibration
from llmecon.errors import UserError


@pytest.fixture(scope="module")
def calib(plant):
    decode = plant.frame(phases=("decode",))
    dense = plant.frame(phases=("prefill", "train"), seqs=(8, 32, 128), batches=(1, 2, 4, 8), seed=1)
    return fit_calibration(pd.concat([decode, dense], ignore_index=True))


def test_document_round_trips_through_its_file(calib, tmp_path):
    path = calib.save(tmp_path / "calibration.json")
    assert Calibration.load(path) == calib
    doc = json.loads(path.read_text())
    assert doc["kind"] == "llmecon-calibration" and doc == Calibration.load(path).model_dump(mode="json")


def test_document_load_names_the_file_and_the_field(calib, tmp_path):
    doc = json.loads(calib.save(tmp_path / "c.json").read_text())
    doc["fits"][1]["eta_compute"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"bad.json: fits\[1\]\.eta_compute: Input should be greater than 0"):
        Calibration.load(tmp_path / "bad.json")
    doc = json.loads((tmp_path / "c.json").read_text()) | {"schema_version": 9}
    (tmp_path / "new.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"new.json: schema_version 9 is newer than this llmecon reads"):
        Calibration.load(tmp_path / "new.json")
    (tmp_path / "nan.json").write_text((tmp_path / "c.json").read_text().replace('"t0_s": ', '"t0_s": NaN, "x": ', 1))
    with pytest.raises(UserError, match="nan.json: not valid JSON"):
        Calibration.load(tmp_path / "nan.json")
    with pytest.raises(UserError, match="cannot read calibration"):
        Calibration.load(tmp_path / "missing.json")


def test_document_refuses_two_fits_for_one_key(calib):
    doc = calib.model_dump(mode="json")
    doc["fits"].append(doc["fits"][0])
    with pytest.raises(ValueError, match="two fits for"):
        Calibration.model_validate(doc)


def test_document_lifts_schema_1_files(calib, tmp_path):
    doc = calib.model_dump(mode="json")
    doc["schema_version"] = 1
    doc["refused"] = [{"hardware": "CPU", "dtype": "fp32", "phase": "decode", "n_rows": 2, "n_shapes": 2,
                       "refused": "too few rows", "device_names": ["CPU"], "run_ids": ["r"], "eta_compute": 0.5}]
    (tmp_path / "v1.json").write_text(json.dumps(doc))
    lifted = Calibration.load(tmp_path / "v1.json")
    assert lifted.schema_version == 3 and lifted.refused[0].refused == "too few rows"


def _as_schema_2(doc: dict) -> dict:
    """A schema 2 file: no per-layer overhead, no depth range, no leave-one-model-out error."""
    fits = []
    for f in doc["fits"]:
        f = {k: v for k, v in f.items() if k not in ("tau_s_per_layer", "heldout_by_model")}
        f["range"] = {k: v for k, v in f["range"].items() if k != "layers"}
        f["terms"] = [t for t in f["terms"] if t != "overhead_per_layer"]
        fits.append(f)
    return {**doc, "schema_version": 2, "fits": fits,
            "model": "step_time_s = F/(P*eta_compute) + B/(W*eta_memory) + t0_s; relative-error non-negative least "
                     "squares; held-out error leave-one-shape-out"}


def test_document_reads_schema_2_files_as_a_constant_overhead(calib, tmp_path):
    (tmp_path / "v2.json").write_text(json.dumps(_as_schema_2(calib.model_dump(mode="json"))))
    lifted = Calibration.load(tmp_path / "v2.json")
    assert lifted.schema_version == 3
    f = lifted.fits[0]
    assert f.tau_s_per_layer is None and f.heldout_by_model is None and f.range.layers is None
    model = f.step_model()
    # no τ: the overhead is t0 at any depth, with or without a layer count
    assert model.overhead_s() == model.overhead_s(96) == f.t0_s


def test_document_tau_and_its_term_go_together(calib):
    doc = calib.model_dump(mode="json")
    doc["fits"][0]["tau_s_per_layer"] = 1e-4
    with pytest.raises(ValueError, match="tau_s_per_layer and the term overhead_per_layer go together"):
        Calibration.model_validate(doc)


def test_document_save_errors_are_user_errors_and_the_file_is_shareable(calib, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot write"):
        calib.save(tmp_path / "a-file" / "calibration.json")
    old = os.umask(0o022)
    try:
        path = calib.save(tmp_path / "calibration.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_document_describe_says_what_was_fitted(calib):
    text = calib.describe()
    assert text.startswith("calibration of Synthetic CPU from 1 run(s), FLOPs in the executed convention:")
    m = re.search(r"Synthetic CPU fp16 decode: η_compute ([\d.]+)%, η_memory ([\d.]+)%", text)
    assert m and float(m[1]) == pytest.approx(40, abs=2) and float(m[2]) == pytest.approx(70, abs=2)  # planted
    assert "held-out error" in text and text.count("\n") == 3    # a header and one line per fit
