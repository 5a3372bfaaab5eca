"""The cross-hardware check: a fit on one accelerator predicts another's points through the datasheet peaks (exact
when the points were made with the same efficiencies), each source is predicted from the others, and a 16-bit fit
never predicts fp8 points."""

from __future__ import annotations

import pytest

from llmecon.calibration.crosscheck import cross_hardware, source_label
from llmecon.calibration.model import StepModel
from llmecon.calibration.published import fit_engine, published_rows
from llmecon.costmodel import flops as cf
from llmecon.costmodel import memory as cm
from llmecon.costmodel.hardware import get_accelerator

from llmecon_test_published_points import ENGINE, SHAPE, TRUE, decode_point, mine, sheet

SHAPES = ((1, 128), (8, 1024), (32, 2048), (64, 4096))


def check(tmp_path, points):
    rows, skipped = published_rows(mine(sheet(tmp_path, points)))
    assert not skipped
    return cross_hardware(rows, {ENGINE: fit_engine(rows, ENGINE)})


def test_same_efficiencies_on_two_accelerators_transfer_exactly(tmp_path):
    """decode_point makes h100-sxm points; the same η's on an a100 make its points: a transfer is then exact."""
    a100 = get_accelerator("a100-sxm4-80gb")
    model = StepModel(TRUE["decode"].eta_compute, TRUE["decode"].eta_memory, TRUE["decode"].t0_s,
                      float(a100.peak("bf16")), float(a100.memory_bytes_per_s))
    points = [decode_point(b, c) for b, c in SHAPES]
    for b, c in SHAPES[:3]:
        t, _ = model.step_time_s(cf.decode_step_flops(SHAPE, b, c, "executed"), cm.decode_step_bytes(SHAPE, "bf16", b, c))
        points.append(decode_point(b, c) | {"accelerator_id": "a100-sxm4-80gb", "value": repr(b / t)})
    frame = check(tmp_path, points)
    moved = frame[(frame["check"] == "transfer") & (frame["fitted_hardware"] == "h100-sxm")]
    assert len(moved) == 1 and moved.iloc[0]["target_hardware"] == "a100-sxm4-80gb"
    assert moved.iloc[0]["median_rel_error"] == pytest.approx(0, abs=1e-6)
    assert moved.iloc[0]["target_points"] == 3


def test_each_source_is_predicted_from_the_others(tmp_path):
    points = [decode_point(b, c) | {"source": f"https://example.org/bench-{i % 2}.md"}
              for i, (b, c) in enumerate(SHAPES + ((16, 512), (128, 256)))]
    frame = check(tmp_path, points)
    left_out = frame[frame["check"].str.startswith("leave out ")]
    assert set(left_out["check"]) == {"leave out bench-0.md", "leave out bench-1.md"}   # the source's file name
    assert (left_out["median_rel_error"] < 1e-6).all() and (left_out["target_points"] == 3).all()


def test_a_16_bit_fit_does_not_predict_fp8_points(tmp_path):
    points = [decode_point(b, c) for b, c in SHAPES]
    points += [decode_point(b, c) | {"accelerator_id": "l40s", "dtype": "fp8"} for b, c in SHAPES]
    points += [decode_point(b, c) | {"accelerator_id": "l40s", "dtype": "fp16"} for b, c in SHAPES[:1]]
    frame = check(tmp_path, points)
    moved = frame[(frame["check"] == "transfer") & (frame["fitted_dtype"] == "bf16")]
    assert list(moved["target_dtype"]) == ["fp16"]


def test_source_labels_name_the_file_and_the_commit():
    assert source_label("https://github.com/o/r/blob/250d9c293d5edbc2a45c20775b3150b1eb68b364/docs/p.md") == "p.md @ 250d9c2"
    assert source_label("https://arxiv.org/abs/2204.02311") == "2204.02311"
