"""The memory model (costmodel.footprint) against what the workloads really allocate on this CPU.

Each case builds a model, runs one round of the real workload (measure.workloads.run_workload, the code bench
times) under measure.allocations.peak_allocated_bytes, and compares the model's predicted peak with the
weights' storage plus the measured peak above it. TOLERANCE is the stated agreement; docs/memory.md lists
the figures (benchmarks/memory_model.py prints them).
"""

from __future__ import annotations

import pytest

from llmecon.costmodel.architecture import shape_from_config
from llmecon.costmodel.footprint import footprint
from llmecon.costmodel.presets import load_model_shape
from llmecon.measure.allocations import peak_allocated_bytes
from llmecon.measure.models import build_model
from llmecon.measure.workloads import run_workload
from llmecon.records.schema import Knobs

TOLERANCE = 0.05   # |predicted / measured - 1|
ONE_STEP = Knobs(warmup_iters=0, min_iters=1, min_time_s=0.0, max_time_s=60.0)
# A Llama whose 4k vocabulary and GQA make the logits and the cache matter as they do in a 128k-vocab model
WIDE = {"model_type": "llama", "vocab_size": 4096, "hidden_size": 128, "intermediate_size": 352,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 1024, "tie_word_embeddings": False}


def _measured_total(spec, phase, *, batch_size, seq_len, dtype, new_tokens=4, **options) -> float:
    """Bytes of the model's parameters and buffers plus the peak allocated above them in one round."""
    attn = options.pop("attn_implementation", "sdpa")
    built = build_model(spec, device="cpu", dtype=dtype, train=phase == "train", attn_implementation=attn)
    model = built.model
    held = sum(t.untyped_storage().nbytes() for t in [*model.parameters(), *model.buffers()])
    peak = peak_allocated_bytes(lambda: run_workload(built, phase, batch_size=batch_size, seq_len=seq_len,
                                                     new_tokens=new_tokens, dtype=dtype, device="cpu",
                                                     knobs=ONE_STEP, **options))
    return held + peak["peak_bytes"]


CASES = [
    ("tiny", "prefill", 2, 128, "fp32", {}),
    ("tiny", "decode", 2, 128, "fp32", {}),
    ("tiny", "train", 2, 128, "fp32", {}),
    ("tiny", "train", 2, 128, "bf16", {}),
    ("wide", "prefill", 4, 256, "fp32", {}),
    ("wide", "prefill", 2, 128, "bf16", {}),
    ("wide", "decode", 4, 256, "fp32", {}),
    ("wide", "decode", 8, 1, "fp32", {"new_tokens": 24}),             # a step at the last position sets the peak
    ("wide", "decode", 8, 1, "fp32", {"new_tokens": 24, "static_cache": True}),
    ("wide", "train", 2, 256, "fp32", {}),
    ("wide", "train", 2, 256, "bf16", {}),
    ("wide", "train", 2, 128, "fp32", {"attn_implementation": "eager"}),
    ("wide", "prefill", 2, 128, "fp32", {"attn_implementation": "eager"}),
]


@pytest.mark.slow
@pytest.mark.parametrize("model, phase, batch, seq, dtype, options", CASES,
                         ids=[f"{m}-{p}-b{b}-s{s}-{d}" + "".join(f"-{k}" for k in o) for m, p, b, s, d, o in CASES])
def test_footprint_validation_predicted_peak_within_tolerance_of_measured(model, phase, batch, seq, dtype, options):
    spec = WIDE if model == "wide" else model
    shape = shape_from_config(WIDE, name="wide") if model == "wide" else load_model_shape(model)
    new_tokens = options.pop("new_tokens", 4)
    measured = _measured_total(spec, phase, batch_size=batch, seq_len=seq, dtype=dtype, new_tokens=new_tokens,
                               **options)
    predicted = footprint(shape, phase, batch_size=batch, seq_len=seq, dtype=dtype, new_tokens=new_tokens,
                          device_kind="cpu", **options)["total_bytes"]
    assert predicted == pytest.approx(measured, rel=TOLERANCE), (predicted / 2**20, measured / 2**20)


@pytest.mark.slow
def test_footprint_validation_activations_and_logits_are_most_of_a_training_peak():
    """The check above has teeth: at this shape, the weights and AdamW state alone fall far short."""
    shape = shape_from_config(WIDE, name="wide")
    f = footprint(shape, "train", batch_size=2, seq_len=256, dtype="fp32", device_kind="cpu")
    measured = _measured_total(WIDE, "train", batch_size=2, seq_len=256, dtype="fp32")
    state = f["parts_bytes"]["weights"] + f["parts_bytes"]["optimizer"]
    assert state < (1 - 3 * TOLERANCE) * measured
