"""fit_overlap on synthetic frames: it recovers a planted overlap, reports points, world sizes and residuals,
skips what it cannot use with the reason, and the document carries the fit (old files load without it)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmecon.calibration.communication import fit_overlap
from llmecon.calibration.document import Calibration
from llmecon.calibration.fit import fit_calibration
from llmecon.costmodel import communication as cc
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError

TINY = load_model_shape("tiny")
BUSBW = {"allreduce_busbw_bytes_per_s": 2e6, "allgather_busbw_bytes_per_s": 1e6}


def row(parallel="none", world_size=1, nnodes=1, step_time_s=0.1, batch_size=4, seq_len=32, **kw):
    return {"parallel": parallel, "world_size": world_size, "nnodes": nnodes, "valid": True,
            "step_time_s": step_time_s, "model": "tiny", "phase": "train", "batch_size": batch_size,
            "seq_len": seq_len, "dtype": "fp32", "hardware": "h100-sxm", "comm_bytes_per_step": None,
            **BUSBW, **kw}


def comm_s(parallel, k, batch, seq):
    by_op = cc.step_bytes(TINY, parallel, batch_size=batch, seq_len=seq, dtype="fp32")
    bw = {"all_reduce": BUSBW["allreduce_busbw_bytes_per_s"], "all_gather": BUSBW["allgather_busbw_bytes_per_s"],
          "reduce_scatter": BUSBW["allgather_busbw_bytes_per_s"]}
    return cc.comm_time_s(by_op, k, bw)


def planted(phi: dict) -> pd.DataFrame:
    rows = []
    for batch, t1 in ((2, 0.05), (4, 0.09)):
        rows.append(row(batch_size=batch, step_time_s=t1))
        for k, nodes in ((2, 1), (4, 1), (8, 2)):
            for parallel in ("ddp", "fsdp"):
                rows.append(row(parallel, k, nodes, t1 + (1 - phi[parallel]) * comm_s(parallel, k, batch, 32),
                                batch_size=batch))
        for k in (2,):
            rows.append(row("tp", k, 1, t1 / k + (1 - phi["tp"]) * comm_s("tp", k, batch, 32), batch_size=batch))
    return pd.DataFrame(rows)


def test_comm_fit_recovers_the_planted_overlap_per_parallelism():
    out = fit_overlap(planted({"ddp": 0.3, "fsdp": 0.7, "tp": 0.0}))
    fits = {f.parallel: f for f in out["fits"]}
    assert fits["ddp"].overlap == pytest.approx(0.3, abs=1e-9)
    assert fits["fsdp"].overlap == pytest.approx(0.7, abs=1e-9)
    assert fits["tp"].overlap == pytest.approx(0.0, abs=1e-9)
    assert fits["ddp"].world_sizes == [2, 4, 8] and fits["ddp"].nnodes == [1, 2] and fits["ddp"].n_points == 6
    assert fits["ddp"].max_rel_error < 1e-9 and fits["ddp"].max_world_size == 8
    group = next(g for g in out["groups"] if g["parallel"] == "fsdp")
    assert {"world_size", "t1_s", "comm_s", "rel_residual", "predicted_step_time_s"} <= set(group["points"][0])
    assert out["skipped"] == []


def test_comm_fit_clips_but_keeps_the_unclipped_value_and_reports_residuals():
    frame = planted({"ddp": -0.5, "fsdp": 0.5, "tp": 0.5})
    frame.loc[frame["parallel"].eq("ddp") & frame["world_size"].eq(8), "step_time_s"] *= 1.5
    fit = next(f for f in fit_overlap(frame)["fits"] if f.parallel == "ddp")
    assert fit.overlap == 0.0 and fit.overlap_unclipped < 0
    assert fit.max_rel_error > 0.05


def test_comm_fit_skips_rows_without_baseline_or_busbw_with_the_reason():
    frame = planted({"ddp": 0.3, "fsdp": 0.3, "tp": 0.3})
    extra = pd.DataFrame([row("ddp", 2, batch_size=16, step_time_s=1.0),
                          row("ddp", 2, batch_size=4, step_time_s=1.0, allreduce_busbw_bytes_per_s=None),
                          row("tp", 4, batch_size=4, step_time_s=1.0)])
    out = fit_overlap(pd.concat([frame, extra], ignore_index=True))
    text = "\n".join(out["skipped"])
    assert "b=16" in text and "no single-device baseline" in text
    assert "no measured allreduce_busbw_bytes_per_s" in text
    assert "KV heads (2) to be a multiple of 4" in text
    assert next(f for f in out["fits"] if f.parallel == "ddp").overlap == pytest.approx(0.3, abs=1e-9)


def test_comm_fit_names_missing_columns():
    with pytest.raises(UserError, match="lack column\\(s\\) .*allgather_busbw_bytes_per_s"):
        fit_overlap(planted({"ddp": 0, "fsdp": 0, "tp": 0}).drop(columns=["allgather_busbw_bytes_per_s"]))


@pytest.fixture(scope="module")
def calib(plant):
    return fit_calibration(plant.frame(phases=("train",), seqs=(8, 32, 128), batches=(1, 2, 4, 8), seed=1))


def test_comm_document_carries_the_fit_and_old_files_load_without_it(tmp_path, calib):
    assert calib.communication == [] and calib.communication_for("h100-sxm", "ddp") is None
    fits = fit_overlap(planted({"ddp": 0.3, "fsdp": 0.7, "tp": 0.0}))["fits"]
    with_comm = calib.model_copy(update={"communication": fits})
    path = with_comm.save(tmp_path / "c.json")
    loaded = Calibration.load(path)
    assert loaded.communication_for("h100-sxm", "fsdp").overlap == pytest.approx(0.7)
    assert len(json.dumps(json.loads(path.read_text())["communication"])) < 1500


def test_comm_calibrate_fits_one_device_rows_and_fills_the_communication_section(plant):
    frame = plant.frame(phases=("train",), seqs=(8, 32, 128), batches=(1, 2, 4, 8), seed=1, model="tiny")
    hw = frame["hardware"].iloc[0]
    frame = frame.assign(parallel="none", world_size=1, nnodes=1, **{k: None for k in BUSBW})
    base = frame[frame["model"].eq("tiny") & frame["seq_len"].eq(32)].iloc[0].to_dict()
    multi = [{**base, "parallel": "ddp", "world_size": k, "run_id": "multi", **BUSBW,
              "step_time_s": base["step_time_s"] + 0.6 * comm_s("ddp", k, int(base["batch_size"]), 32)}
             for k in (2, 4)]
    calib = fit_calibration(pd.concat([frame, pd.DataFrame(multi)], ignore_index=True))
    assert "multi" not in calib.provenance.run_ids
    fit = calib.communication_for(hw, "ddp")
    assert fit.overlap == pytest.approx(0.4, abs=1e-9) and fit.world_sizes == [2, 4]
