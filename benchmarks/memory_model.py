"""How close is the memory model (costmodel.footprint) to what bench's workloads really allocate?

For each case: build the model, run one round of the real workload (measure.workloads.run_workload) under
measure.allocations.peak_allocated_bytes (CPU: torch.profiler's allocator events; CUDA:
torch.cuda.max_memory_allocated), add the parameters' and buffers' storage, and print it beside the
predicted peak. Each case runs in a fresh process, so one case's allocator state cannot leak into the next.

    PYTHONPATH=src python benchmarks/memory_model.py                      # the CPU cases (about 2 minutes)
    PYTHONPATH=src python benchmarks/memory_model.py --device cuda        # Llama 1B cases on a GPU, bf16

The CPU figures are in docs/memory.md; tests/measure/test_footprint_validation.py checks the smaller cases.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from llmecon.costmodel.architecture import shape_from_config
from llmecon.costmodel.footprint import footprint
from llmecon.costmodel.presets import load_model_shape

WIDE = {"model_type": "llama", "vocab_size": 4096, "hidden_size": 128, "intermediate_size": 352,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 1024, "tie_word_embeddings": False}
MEDIUM = {"model_type": "llama", "vocab_size": 16000, "hidden_size": 256, "intermediate_size": 704,
          "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
          "max_position_embeddings": 4096, "tie_word_embeddings": False}
MODELS = {"wide": WIDE, "medium": MEDIUM}

# (model, phase, batch, seq, dtype, options)
CPU_CASES = [
    ("tiny", "prefill", 2, 128, "fp32", {}), ("tiny", "decode", 2, 128, "fp32", {}),
    ("tiny", "train", 2, 128, "fp32", {}), ("tiny", "train", 2, 128, "bf16", {}),
    ("wide", "prefill", 4, 256, "fp32", {}), ("wide", "decode", 4, 256, "fp32", {}),
    ("wide", "decode", 8, 1, "fp32", {"new_tokens": 24}), ("wide", "train", 2, 256, "fp32", {}),
    ("wide", "train", 2, 256, "bf16", {}), ("wide", "train", 2, 128, "fp32", {"attn_implementation": "eager"}),
    ("medium", "prefill", 4, 512, "fp32", {}), ("medium", "prefill", 4, 512, "bf16", {}),
    ("medium", "decode", 4, 512, "fp32", {}), ("medium", "decode", 4, 512, "bf16", {"static_cache": True}),
    ("medium", "train", 4, 512, "fp32", {}), ("medium", "train", 4, 512, "bf16", {}),
    ("medium", "train", 4, 512, "fp32", {"activation_checkpointing": True}),
    ("medium", "prefill", 4, 512, "bf16", {"attn_implementation": "eager"}),
]
CUDA_CASES = [
    ("llama-3.2-1b", "prefill", 8, 2048, "bf16", {}), ("llama-3.2-1b", "decode", 8, 2048, "bf16", {"new_tokens": 32}),
    ("llama-3.2-1b", "train", 1, 2048, "bf16", {}), ("llama-3.2-1b", "train", 4, 2048, "bf16", {}),
]


def _measure(case: list, device: str) -> dict:
    """One case in this process: {"measured_bytes", "method"}."""
    from llmecon.measure.allocations import peak_allocated_bytes
    from llmecon.measure.models import build_model
    from llmecon.measure.workloads import run_workload
    from llmecon.records.schema import Knobs

    model, phase, batch, seq, dtype, options = case
    options = dict(options)
    new_tokens = options.pop("new_tokens", 4)
    attn = options.pop("attn_implementation", "sdpa")
    built = build_model(MODELS.get(model, model), device=device, dtype=dtype, train=phase == "train",
                        attn_implementation=attn)
    held = sum(t.untyped_storage().nbytes() for t in [*built.model.parameters(), *built.model.buffers()])
    knobs = Knobs(warmup_iters=0, min_iters=1, min_time_s=0.0, max_time_s=60.0)
    peak = peak_allocated_bytes(lambda: run_workload(built, phase, batch_size=batch, seq_len=seq,
                                                     new_tokens=new_tokens, dtype=dtype, device=device,
                                                     knobs=knobs, **options), device)
    return {"measured_bytes": held + peak["peak_bytes"], "method": peak["method"]}


def _predict(case: list, device_kind: str) -> dict:
    model, phase, batch, seq, dtype, options = case
    shape = shape_from_config(MODELS[model], name=model) if model in MODELS else load_model_shape(model)
    options = {"new_tokens": 4, **options}
    return footprint(shape, phase, batch_size=batch, seq_len=seq, dtype=dtype, device_kind=device_kind, **options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda: the Llama 1B cases)")
    ap.add_argument("--one", help=argparse.SUPPRESS)   # a case as JSON, measured in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_measure(json.loads(args.one), args.device)))
        return
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    device = "cuda:0" if args.device == "cuda" else args.device
    cases = CUDA_CASES if kind == "cuda" else CPU_CASES
    print(f"{'model':13} {'phase':8} {'b':>3} {'s':>5} {'dtype':5} {'options':28} {'measured':>12} "
          f"{'predicted':>12} {'pred/meas':>9}  peak at")
    for case in cases:
        proc = subprocess.run([sys.executable, __file__, "--device", device, "--one", json.dumps(case)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{case}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        measured = json.loads(proc.stdout.strip().splitlines()[-1])["measured_bytes"]
        pred = _predict(case, kind)
        model, phase, batch, seq, dtype, options = case
        opts = ",".join(f"{k}={v}" for k, v in options.items()) or "-"
        print(f"{model:13} {phase:8} {batch:>3} {seq:>5} {dtype:5} {opts:28} {measured / 2**20:9.2f} MiB "
              f"{pred['total_bytes'] / 2**20:9.2f} MiB {pred['total_bytes'] / measured:9.3f}  {pred['peak_at']}")


if __name__ == "__main__":
    main()
