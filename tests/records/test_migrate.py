"""Schema 1 -> 2 -> 3 -> 4: the committed run and older layouts load through one explicit migration."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from llmecon.errors import UserError
from llmecon.records.load import load_results
from llmecon.records.migrate import SCHEMA_1_SCALING, schema_version, upgrade_record, upgrade_run
from llmecon.records.schema import SCHEMA_VERSION, Record
from llmecon.records.store import read_record, read_run

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "20261129T225350Z-f460904a"


def _v1_record(name: str = "prefill-tiny-fp32-b4-s256-16720cfb.json") -> dict:
    return json.loads((COMMITTED / "records" / name).read_text())


def test_migrate_committed_schema_1_run_loads_with_its_published_numbers():
    """The committed CPU run (schema 1) loads: prefill 246k tokens/s at batch 4 x 256 (the mean step of its one
    round), 20.2 % of the measured GEMM ceiling, as results/README.md reports."""
    res = load_results(COMMITTED)
    assert not res.problems and len(res.frame) == 12 and res.frame["valid"].all()
    row = res.frame[(res.frame["phase"] == "prefill") & (res.frame["batch_size"] == 4)
                    & (res.frame["seq_len"] == 256)].iloc[0]
    assert row["tokens_per_s"] == pytest.approx(245_584, rel=1e-4)
    assert row["mfu_executed_vs_ceiling"] == pytest.approx(0.2024, abs=5e-4)


def test_migrate_run_json_gains_kind_and_version():
    doc = json.loads((COMMITTED / "run.json").read_text())
    up = upgrade_run(doc)
    assert (up["schema_version"], up["kind"]) == (SCHEMA_VERSION, "llmecon-run") and doc["schema_version"] == 1
    assert read_run(COMMITTED / "run.json").device.name == doc["device"]["name"]


def test_migrate_reason_text_becomes_a_list():
    rec = _v1_record()
    rec["reason"] = "min_iterations_not_met; noisy"
    assert upgrade_record(rec)["reasons"] == ["min_iterations_not_met", "noisy"]
    rec["reason"] = None
    assert upgrade_record(rec)["reasons"] == []


def test_migrate_record_before_full_model_work_scales_by_layer_scale():
    """A schema-1 record from before work.full_model: its --layers extrapolation was the whole step x L/k;
    the migration says so and keeps those numbers."""
    rec = _v1_record()   # the committed run predates work.full_model (its layer_scale is 1)
    assert "full_model" not in rec["work"] and "time_scale" not in rec["model"]
    rec["model"]["layer_scale"] = 4.0
    up = upgrade_record(rec)
    assert up["model"]["time_scale"] == 4.0 and up["model"]["extrapolation_basis"] == SCHEMA_1_SCALING
    assert up["work"]["full_model"]["flops_per_step"]["executed"] == 4.0 * rec["work"]["flops_per_step"]["executed"]


def test_migrate_config_path_name_becomes_the_folder_name():
    rec = _v1_record()
    rec["model"]["name"] = "/models/my-llama/config.json"
    assert upgrade_record(rec)["model"]["name"] == "my-llama"


def test_migrate_missing_weights_default_to_random():
    rec = _v1_record()
    del rec["config"]["weights"]
    assert upgrade_record(rec)["config"]["weights"] == "random"


def test_migrate_one_timing_window_becomes_one_round():
    """Schema 2 -> 3: the window's samples move into rounds[0]; IQR and percentiles are dropped (recomputed on
    load); one round has no spread; the knobs say one round, no precision target."""
    rec = _v1_record()
    v2 = upgrade_record(rec)
    assert v2["schema_version"] == SCHEMA_VERSION
    timing = v2["timing"]
    old = rec["timing"]
    assert len(timing["rounds"]) == 1 and timing["rounds"][0]["samples_s"] == old["samples_s"]
    assert timing["rounds"][0]["n_samples"] == old["n_samples"] and timing["spread"] is None
    assert timing["rounds"][0]["median_s"] == old["median_s"] and timing["step_s"] is None
    assert "iqr_s" not in timing and "iqr_s" not in timing["rounds"][0]
    assert Record.model_validate(v2).measure.rounds == 1 and Record.model_validate(v2).measure.target_rel_ci is None


def test_migrate_decode_positions_move_with_their_round():
    rec = _v1_record("decode-tiny-fp32-b1-s256-n16-00a1982b.json")
    up = upgrade_record(rec)
    assert up["timing"]["rounds"][0]["context_positions"] == rec["timing"]["context_positions"]
    assert up["timing"]["protocol"] == rec["timing"]["protocol"]


def test_migrate_does_not_change_its_input():
    rec = _v1_record()
    before = copy.deepcopy(rec)
    upgrade_record(rec)
    assert rec == before


@pytest.mark.parametrize("version,message", [(None, "expected a whole number"), (True, "expected a whole number"),
                                             (0, "expected a whole number"), (99, "newer than this llmecon")])
def test_migrate_refuses_unknown_versions(version, message):
    with pytest.raises(UserError, match=message):
        schema_version({"schema_version": version})


def test_migrate_newer_record_is_a_problem_not_a_crash(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(COMMITTED, run)
    path = next((run / "records").glob("*.json"))
    doc = json.loads(path.read_text())
    doc["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(doc))
    res = load_results(run)
    assert len(res.frame) == 11 and any("newer than this llmecon" in p for p in res.problems)
    with pytest.raises(UserError, match="newer"):
        read_record(path)


def test_migrate_3_to_4_power_cap_is_not_throttling_and_short_windows_lose_energy_per_token(plant):
    rec = plant.record("c3", samples=[0.01] * 10, energy_j=5.0, tokens=64)
    doc = json.loads(json.dumps({**rec, "schema_version": 3, "run_id": "r", "created_utc": "now"}))
    doc["telemetry"].update(throttle_reasons=["hw_slowdown", "sw_power_cap"], window_s=0.4, energy_j_per_token=0.01)
    doc["timing"]["validity"]["warnings"] = ["throttled:sw_power_cap", "throttled:hw_slowdown,sw_power_cap", "noisy"]
    up = upgrade_record(doc)
    assert up["schema_version"] == SCHEMA_VERSION
    assert up["telemetry"]["throttle_reasons"] == ["hw_slowdown"]
    assert up["timing"]["validity"]["warnings"] == ["throttled:hw_slowdown", "noisy"]
    assert up["telemetry"]["energy_j_per_token"] is None and "under 2 s" in up["telemetry"]["energy_reason"]
    assert up["telemetry"]["energy_j"] == 5.0   # the energy itself stays
    Record.model_validate(up)
