"""`--compile` and `--static-cache` end to end on the CPU: torch.compile (inductor, which builds C++ kernels)
for prefill, training and static-cache decode of a one-layer tiny model, through `llmecon bench` and its
worker process; and the CUDA-graph decode path's own bookkeeping, exercised on the CPU.

Inductor's on-disk cache is pointed at a fresh folder for the module, so the first test pays every C++
compile, as a CI machine does (44 s on the 2-core development VM when idle, about 60 s of CPU time, most of it
g++ parsing torch's headers once per kernel); the later tests reuse those kernels.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from llmecon import api
from llmecon.measure import compiled, workloads
from llmecon.measure.models import build_model
from llmecon.records.schema import Knobs

SEQ, NEW = 16, 3
QUICK = Knobs(warmup_iters=1, min_iters=3, min_time_s=0.0, max_time_s=2.0)


def _cxx() -> str | None:
    """The C++ compiler inductor uses on Linux: $CXX, else g++ (torch._inductor.config.cpp.cxx)."""
    return shutil.which(os.environ.get("CXX", "g++"))


needs_cxx = pytest.mark.skipif(_cxx() is None, reason="no C++ compiler ($CXX or g++): torch.compile's inductor "
                                                      "backend builds C++ kernels on the CPU")


@pytest.fixture(scope="module", autouse=True)
def fresh_inductor_cache(tmp_path_factory):
    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("inductor"))
    yield
    if old is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = old


def _records(run_dir) -> dict[str, dict]:
    recs = [json.loads(p.read_text()) for p in (run_dir / "records").glob("*.json")]
    return {r["config"]["phase"]: r for r in recs}


@pytest.mark.slow
@needs_cxx
def test_compile_bench_prefill_train_and_static_cache_decode_end_to_end(tmp_path):
    res = api.bench("tiny", phases="prefill,decode,train", seq_lens=(SEQ,), new_tokens=NEW, layers=1, device="cpu",
                    compile=True, static_cache=True, rounds=1, precision=0, min_iters=3, min_time_s=0.0,
                    threads=1, out=tmp_path)
    recs = _records(res.paths[0])
    assert sorted(recs) == ["decode", "prefill", "train"]
    for phase, rec in recs.items():
        assert rec["status"] == "ok", (phase, rec["reasons"], rec.get("error"))
        assert rec["config"]["compile"] is True
        (rnd,) = rec["timing"]["rounds"]
        # the step really was compiled, in one graph, before the timed window (the cold call paid for it)
        compile_words = [w for w in rec["timing"]["validity"]["warnings"] if w.startswith("compile")]
        assert compile_words == [], (phase, compile_words)
        assert rnd["first_call_s"] > 20 * rnd["median_s"], (phase, rnd["first_call_s"], rnd["median_s"])
        assert rec["work"]["ops"]["reason"].startswith("not counted for a compiled step")
    decode = recs["decode"]
    assert decode["config"]["static_cache"] is True and decode["timing"]["cache"] == "static"
    rnd = decode["timing"]["rounds"][0]
    assert rnd["warmup_iters"] == NEW - 1   # cold call + warm-up = one full pass (no CUDA graphs on a CPU)
    assert rnd["n_samples"] % NEW == 0 and rnd["n_samples"] >= NEW
    assert rnd["context_positions"] == [SEQ, SEQ + 1, SEQ + 2] * (rnd["n_samples"] // NEW)
    assert res.frame.set_index("phase").loc["decode", "bytes_per_step"] > 0


@pytest.mark.slow
@needs_cxx
def test_compile_cuda_graph_decode_bookkeeping_on_the_cpu(monkeypatch):
    """The reduce-overhead path (CUDA graphs on a GPU) forced on the CPU, where inductor skips the CUDA graphs
    and says so: fewer steps per pass than CUDA graphs need calls before they replay, so the warm-up runs two
    passes (re-prefilling between them, untimed) and the samples still sit at the planned positions."""
    import torch

    monkeypatch.setattr(workloads, "decode_compile_mode", lambda device, static_cache: "reduce-overhead")
    built = build_model("tiny", device="cpu", dtype="fp32", layers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the bench above ran: inductor reuses the C++ kernels it built there
    try:
        out = workloads.run_workload(built, "decode", batch_size=1, seq_len=SEQ, new_tokens=2, dtype="fp32",
                                     device="cpu", compile=True, static_cache=True, knobs=QUICK)
    finally:
        torch.set_num_threads(threads)
    rnd = out["round"]
    assert rnd["validity"]["valid"], rnd["validity"]
    assert rnd["warmup_iters"] == 2 * 2 - 1 >= workloads.CUDA_GRAPH_CALLS_BEFORE_REPLAY - 1
    assert rnd["context_positions"] == [SEQ, SEQ + 1] * (rnd["n_samples"] // 2)
    assert "cudagraphs_skipped:1" in rnd["validity"]["warnings"]
    assert not any(w.startswith(("compile_", "compiled_in_window")) for w in rnd["validity"]["warnings"])


def test_compile_watch_turns_dynamo_counters_into_reasons_and_warnings(monkeypatch):
    """Fast: the counter arithmetic, with dynamo's counters replaced by a script of snapshots."""
    snaps = iter([
        {"frames_ok": 5, "frames_total": 6, "graph_breaks": 1, "limit_hits": 0, "cudagraph_skips": 0},  # start
        {"frames_ok": 7, "frames_total": 8, "graph_breaks": 1, "limit_hits": 0, "cudagraph_skips": 0},  # window
        {"frames_ok": 9, "frames_total": 12, "graph_breaks": 3, "limit_hits": 1, "cudagraph_skips": 2},  # end
    ])
    monkeypatch.setattr(compiled, "_snapshot", lambda: next(snaps))
    watch = compiled.CompileWatch()
    watch.window_start()
    reasons, warnings = watch.findings()
    assert reasons == ["compile_fell_back_to_eager:recompile_limit", "compiled_in_window:4"]
    assert warnings == ["compile_frames_failed:1", "compile_graph_breaks:2", "compile_recompiles:3",
                        "cudagraphs_skipped:2"]


def test_compile_watch_of_a_clean_compile_says_nothing(monkeypatch):
    same = {"frames_ok": 1, "frames_total": 1, "graph_breaks": 0, "limit_hits": 0, "cudagraph_skips": 0}
    snaps = iter([dict(same, frames_ok=0, frames_total=0), same, same])
    monkeypatch.setattr(compiled, "_snapshot", lambda: next(snaps))
    watch = compiled.CompileWatch()
    watch.window_start()
    assert watch.findings() == ([], [])
