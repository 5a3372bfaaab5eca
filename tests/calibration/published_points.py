"""Synthetic published points made by a known step-time model (loaded by conftest.py as
``llmecon_test_published_points``): a sheet of them in a temporary folder, and the points of one kind."""

from __future__ import annotations

import csv
import io

from llmecon.calibration.model import StepModel
from llmecon.costmodel import flops as cf
from llmecon.costmodel import memory as cm
from llmecon.costmodel.hardware import get_accelerator
from llmecon.costmodel.presets import load_model_shape
from llmecon.costmodel.published import COLUMNS, load_published

ENGINE = "synthetic-engine"
BASE = {c: "" for c in COLUMNS} | {
    "engine": ENGINE, "engine_version": "1", "accelerator_id": "h100-sxm", "accelerator_count": "1",
    "model": "llama-2-7b", "dtype": "bf16", "source": "https://example.org/a", "retrieved_on": "2026-12-04",
}
H100 = get_accelerator("h100-sxm")
P, W = float(H100.peak("bf16")), float(H100.memory_bytes_per_s)
SHAPE = load_model_shape("llama-2-7b")
TRUE = {"decode": StepModel(0.5, 0.8, 2e-3, P, W), "prefill": StepModel(0.6, None, 5e-3, P, None),
        "train": StepModel(0.4, None, 0.0, P, None)}


def sheet(tmp_path, rows, name="points.csv"):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for i, row in enumerate(rows):
        w.writerow(BASE | {"id": f"p{i}-{name.split('.')[0]}"} | {k: str(v) for k, v in row.items()})
    path = tmp_path / name
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def mine(path):
    return [m for m in load_published([path]) if m.engine == ENGINE]


def decode_point(batch, prompt, model=TRUE["decode"]):
    t, _ = model.step_time_s(cf.decode_step_flops(SHAPE, batch, prompt, "executed"),
                             cm.decode_step_bytes(SHAPE, "bf16", batch, prompt))
    return {"phase": "decode", "batch_size": batch, "input_len": prompt, "value": repr(batch / t), "unit": "tokens/s"}


def prefill_point(batch, prompt):
    t, _ = TRUE["prefill"].step_time_s(cf.prefill_flops(SHAPE, batch, prompt, "executed"), None)
    return {"phase": "prefill", "batch_size": batch, "input_len": prompt, "value": repr(t * 1e3), "unit": "ms"}
