"""Does the harness cost anything? bench's prefill tokens/s against a bare torch loop, same everything.

Both sides use the same model object, the same input shape, dtype and thread count, in the same
process. "bench" is `llmecon.measure.workloads.run_workload(..., "prefill")` (measure(): per-call
clock, sync hook, telemetry hooks, validity); "bare" is

    with torch.inference_mode():
        for _ in range(n): model(input_ids=ids, use_cache=False, logits_to_keep=1)

timed as a whole and divided by n (a mean). The two are interleaved (bare, bench, bare, bench, ...)
so that drift on a shared host hits both. Two ratios, each the median over rounds:
bench(mean)/bare compares like with like (bench's summed sample time / n: the harness's own cost per
call) and is the overhead figure (target >= 0.97 on CPU); bench(median)/bare uses the median that
bench reports, which on a busy host is also less hit by stalls than any mean. On a shared host the
round-to-round spread is far larger than the harness's cost, so the script also prints that cost
directly: measure() around a no-op, per call, and as a fraction of the model's median call.

    PYTHONPATH=src python benchmarks/harness_overhead.py [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from llmecon.measure.models import build_model
from llmecon.measure.timing import measure
from llmecon.measure.workloads import run_workload
from llmecon.records.schema import Knobs


def _bare(model, ids, n: int) -> float:
    import torch

    with torch.inference_mode():
        model(input_ids=ids, use_cache=False, logits_to_keep=1)  # warm
        t0 = time.perf_counter()
        for _ in range(n):
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
        return (time.perf_counter() - t0) / n


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    # tiny (calls of ~1 ms: the harness's fixed cost shows most) and a small llama (~20 M parameters)
    small = {"model_type": "llama", "vocab_size": 8192, "hidden_size": 512, "intermediate_size": 1376,
             "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
             "max_position_embeddings": 2048, "tie_word_embeddings": False}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, "
          f"batch {args.batch_size} x seq {args.seq_len}, {args.rounds} interleaved rounds")
    # the harness's fixed cost, free of host noise: measure() around a call that does nothing
    noop = measure(lambda: None, Knobs(warmup_iters=100, min_iters=20_000, min_time_s=0.0, max_time_s=5.0,
                                       max_iters=20_000))
    fixed_s = noop.total_s / noop.n_samples
    print(f"measure() per-call cost around a no-op: {fixed_s * 1e6:.2f} us (loop, clock reads, hooks)")
    for name, spec in (("tiny", "tiny"), ("small-llama-20M", small)):
        built = build_model(spec, device="cpu", dtype="fp32")
        tokens = args.batch_size * args.seq_len
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, built.shape.vocab_size, (args.batch_size, args.seq_len), generator=g)
        # calls per bare round ~ the number of samples bench takes in its 1 s window
        per_call = _bare(built.model, ids, 3)
        n = max(10, min(2000, int(1.0 / per_call)))
        ratios, mean_ratios, bare_tps, bench_tps = [], [], [], []
        for _ in range(args.rounds):
            bare = tokens / _bare(built.model, ids, n)
            out = run_workload(built, "prefill", batch_size=args.batch_size, seq_len=args.seq_len, new_tokens=0,
                               dtype="fp32", device="cpu",
                               knobs=Knobs(warmup_iters=3, min_iters=10, min_time_s=1.0, max_time_s=10.0))
            # bench's number is what the results loader reports: tokens / median step time
            bench = tokens / out["round"]["median_s"]
            samples = out["round"]["samples_s"]
            bench_mean = tokens * len(samples) / sum(samples)
            bare_tps.append(bare)
            bench_tps.append(bench)
            ratios.append(bench / bare)
            mean_ratios.append(bench_mean / bare)
        print(f"{name:>16}: bare {statistics.median(bare_tps):,.0f} tok/s, bench {statistics.median(bench_tps):,.0f} "
              f"tok/s; bench(median)/bare = {statistics.median(ratios):.3f}, "
              f"bench(mean)/bare = {statistics.median(mean_ratios):.3f} "
              f"(rounds: {', '.join(f'{r:.3f}' for r in mean_ratios)}); fixed cost / median call = "
              f"{fixed_s / statistics.median(out['round']['samples_s']):.2e}")


if __name__ == "__main__":
    main()
