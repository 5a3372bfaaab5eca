"""The record format is declared once (records/schema.py), published as JSON Schema under docs/, and every
file is checked against it: a wrong field is named, never guessed at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmecon.errors import UserError
from llmecon.records.schema import SCHEMA_VERSION, Record, Run, json_schemas
from llmecon.records.store import read_record, write_record

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_schema_published_json_schema_equals_the_models():
    for name, schema in json_schemas().items():
        assert json.loads((DOCS / name).read_text()) == json.loads(json.dumps(schema)), (
            f"docs/{name} is out of date: regenerate it from llmecon.records.schema.json_schemas()")


def test_schema_version_is_declared_in_the_models():
    assert Record.model_fields["schema_version"].annotation.__args__ == (SCHEMA_VERSION,)
    assert Run.model_fields["schema_version"].annotation.__args__ == (SCHEMA_VERSION,)


def test_schema_writer_refuses_a_malformed_record_naming_the_field(tmp_path, plant):
    run = plant.run(tmp_path)
    rec = plant.record("c1")
    rec["timing"]["rounds"][0]["samples_s"] = [0.01, "fast"]
    with pytest.raises(ValueError, match=r"timing\.rounds\[0\]\.samples_s\[1\]"):
        write_record(run, rec)
    assert not list((run / "records").glob("*.json"))


def test_schema_writer_refuses_unknown_fields(tmp_path, plant):
    run = plant.run(tmp_path)
    with pytest.raises(ValueError, match="surprise"):
        write_record(run, {**plant.record("c1"), "surprise": 1})


def test_schema_reader_names_the_file_and_field_of_a_bad_record(tmp_path, plant):
    run = plant.run(tmp_path, [plant.record("c1")])
    path = run / "records" / "c1.json"
    doc = json.loads(path.read_text())
    doc["config"]["batch_size"] = "eight"
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"c1\.json: config\.batch_size: Input should be a valid integer"):
        read_record(path)


def test_schema_record_written_by_the_real_builder_round_trips(tmp_path, plant):
    run = plant.run(tmp_path, [plant.record("c1", phase="decode", bytes_step=3e9, tokens=1)])
    rec = read_record(run / "records" / "c1.json")
    assert rec.schema_version == SCHEMA_VERSION and rec.kind == "llmecon-record"
    assert rec.config.phase == "decode" and rec.work.full_model.bytes_per_step == 3e9
