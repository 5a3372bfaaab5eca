"""`torch.compile` for the workloads (``--compile``): a fresh compile each round, and what it did.

`CompileWatch` is made once per round of a compiled configuration (`workloads.run_workload`):

- it **resets dynamo** (`torch._dynamo.reset()`: the in-process compile caches and the CUDA-graph trees)
  before compiling, so each round compiles its own step from scratch in its cold call (the inductor's disk
  cache still makes later compiles of the same graph cheaper). Without it, prefill, decode and training of one
  model share one code object (the model's ``forward``), so their compiled entries pile up there across the
  sweep: a later configuration is compiled for dynamic shapes because an earlier one had other shapes, and past
  ``torch._dynamo.config.recompile_limit`` (8) entries dynamo silently runs the model eagerly. It also makes
  ``first_call_s`` mean the same thing in every round, and frees the previous round's CUDA-graph memory pool;
- `compile` wraps a callable in ``torch.compile`` (with a mode: ``reduce-overhead`` for static-cache decode
  on CUDA, see docs/measuring.md "Compiled decode");
- it reads dynamo's counters (``torch._dynamo.utils.counters``, the numbers ``TORCH_LOGS=graph_breaks,
  recompiles`` reports) at the start, when the timed window starts (`window_start`) and at the end, and
  `findings` turns their changes into the round's validity reasons and warnings:

  - ``compile_fell_back_to_eager:recompile_limit`` (a reason: the row would claim a compiled step that
    ran eagerly): dynamo hit its recompile limit and ran the frame uncompiled;
  - ``compiled_in_window:<n>`` (a reason: a sample that compiled takes seconds where a step takes
    milliseconds, and the round's mean would carry it): dynamo compiled inside the timed window. It happens
    when the warm-up did not reach every shape or guard the window meets: a model whose static cache has
    sliding-window layers recompiles when the window fills (transformers keeps that length in a Python int), and
    a warm-up cut short by ``max_time_s`` may stop before that position;
  - ``compile_frames_failed:<n>``: frames dynamo tried and could not compile (they ran eagerly);
  - ``compile_graph_breaks:<n>``: the step was split into several graphs (slower; on CUDA, several CUDA graphs);
  - ``compile_recompiles:<n>``: frames compiled beyond the first in the round (a decode step over a dynamic
    cache recompiles once, for dynamic shapes, when the cache first grows; a graph break's resume function
    also counts);
  - ``cudagraphs_skipped:<n>``: inductor ran a ``reduce-overhead`` graph without CUDA graphs (its log says why).

``torch._dynamo.utils.counters`` is a process-wide tally that torch's own tests read; it is not a public API,
so a torch that lacks a key reads as zero rather than failing the run.
"""

from __future__ import annotations

from collections.abc import Callable

LIMIT_PREFIX = "Dynamo recompile limit exceeded"   # the Unsupported message dynamo counts when it gives up


def _snapshot() -> dict[str, int]:
    from torch._dynamo.utils import counters

    def get(group: str, key: str) -> int:
        return int(counters[group].get(key, 0)) if group in counters else 0

    def total(group: str, prefix: str = "") -> int:
        return int(sum(n for k, n in counters[group].items() if str(k).startswith(prefix))) if group in counters else 0

    return {"frames_ok": get("frames", "ok"), "frames_total": get("frames", "total"),
            "graph_breaks": total("graph_break"), "limit_hits": total("unimplemented", LIMIT_PREFIX),
            "cudagraph_skips": get("inductor", "cudagraph_skips")}


class CompileWatch:
    """Compile a round's step afresh and report what dynamo did (see the module docstring)."""

    def __init__(self):
        import torch

        torch._dynamo.reset()
        self._start = _snapshot()
        self._window: dict[str, int] | None = None

    @staticmethod
    def compile(fn: Callable, mode: str | None = None) -> Callable:
        import torch

        return torch.compile(fn, mode=mode)

    def window_start(self) -> None:
        """Call when the timed window starts (after the cold call and the warm-up)."""
        self._window = _snapshot()

    def counts(self) -> dict[str, int]:
        """Changes since the round started: frames compiled and failed, graph breaks, recompile-limit hits,
        CUDA-graph skips, and frames compiled inside the timed window."""
        end = _snapshot()
        d = {k: end[k] - self._start[k] for k in end}
        out = {"frames_compiled": d["frames_ok"], "frames_failed": d["frames_total"] - d["frames_ok"],
               "graph_breaks": d["graph_breaks"], "recompile_limit_hits": d["limit_hits"],
               "cudagraph_skips": d["cudagraph_skips"],
               "compiled_in_window": (end["frames_total"] - self._window["frames_total"]) if self._window else 0}
        return out

    def findings(self) -> tuple[list[str], list[str]]:
        """(validity reasons, warnings) for the round."""
        c = self.counts()
        reasons = ["compile_fell_back_to_eager:recompile_limit"] if c["recompile_limit_hits"] else []
        if c["compiled_in_window"]:
            reasons.append(f"compiled_in_window:{c['compiled_in_window']}")
        warnings = []
        failed = c["frames_failed"] - c["recompile_limit_hits"]
        if failed > 0:
            warnings.append(f"compile_frames_failed:{failed}")
        if c["graph_breaks"]:
            warnings.append(f"compile_graph_breaks:{c['graph_breaks']}")
        if c["frames_compiled"] > 1:
            warnings.append(f"compile_recompiles:{c['frames_compiled'] - 1}")
        if c["cudagraph_skips"]:
            warnings.append(f"cudagraphs_skipped:{c['cudagraph_skips']}")
        return reasons, warnings
