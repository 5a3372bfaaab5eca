"""The bench worker: runs configurations and reports one record per configuration as it finishes.

`python -m llmecon.measure.worker` reads one job (JSON) on stdin: the device, the timing knobs, the
thread count and a list of configurations that share a model. It builds the model once per kind
(inference, or fp32-master training), runs the configurations in order and prints one JSON line per
event on its protocol channel (its original stdout; anything else written to stdout goes to stderr,
which the parent keeps in <run>/logs/):

    {"event": "ready", "pid": ...}                  torch and transformers are imported
    {"event": "start", "config_id": ...}            before a configuration starts (the timeout clock)
    {"event": "record", "record": {...}}            the finished record (the parent writes it to disk)

After an OOM or any other failure it exits, so the next configuration starts in a fresh process
(see runner.py). It also exits by itself if its parent dies (a watchdog compares getppid()).
The parent is the only writer of records; this process never touches the run folder.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable

from llmecon.measure.models import build_model, built_shape
from llmecon.measure.record import base_record
from llmecon.measure.workloads import run_workload
from llmecon.records.schema import Knobs

EXIT_AFTER_FAILURE = 3


def _is_oom(exc: BaseException) -> bool:
    import torch

    types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t)
    return isinstance(exc, types) or "out of memory" in str(exc).lower() and isinstance(exc, RuntimeError)


def _cleanup(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def execute(job: dict, emit: Callable[[dict], None]) -> int:
    """Run job["configs"] in order, emitting events; return 0, or EXIT_AFTER_FAILURE after a failure."""
    import torch
    import transformers  # noqa: F401  (imported before the first "start": not charged to its timeout)

    device, knobs = job["device"], Knobs.model_validate(job["knobs"])
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    emit({"event": "ready", "pid": os.getpid()})
    models: dict[Any, Any] = {}
    for cfg in job["configs"]:
        emit({"event": "start", "config_id": cfg["config_id"]})
        shape, full = built_shape(cfg["model"], cfg.get("layers"))
        t0 = time.perf_counter()
        load_before = _loadavg()
        try:
            key = (cfg["model"], cfg["phase"] == "train")
            if key not in models:
                models.clear()
                _cleanup(device)
                models[key] = build_model(
                    cfg["model"], device=device, dtype=cfg["dtype"], layers=cfg.get("layers"),
                    attn_implementation=cfg["attn_implementation"], weights=cfg.get("weights", "random"),
                    train=cfg["phase"] == "train",
                )
            out = run_workload(
                models[key], cfg["phase"], batch_size=cfg["batch_size"], seq_len=cfg["seq_len"],
                new_tokens=cfg.get("new_tokens") or 0, dtype=cfg["dtype"], device=device,
                compile=cfg.get("compile", False), static_cache=cfg.get("static_cache", False),
                activation_checkpointing=cfg.get("activation_checkpointing", False), knobs=knobs,
            )
        except Exception as exc:  # every failure becomes a status; the traceback is kept
            status = "oom" if _is_oom(exc) else "error"
            rec = base_record(cfg, shape, full, status=status, reasons=[f"{type(exc).__name__}: {exc}"[:500]],
                              knobs=knobs)
            rec["error"] = {"type": type(exc).__name__, "message": str(exc)[:2000],
                            "traceback": traceback.format_exc()[-4000:]}
            rec["timing"]["total_s"] = time.perf_counter() - t0
            models.clear()
            _cleanup(device)
            emit({"event": "record", "record": rec})
            return EXIT_AFTER_FAILURE
        timing = out["timing"]
        valid = timing["validity"]["valid"]
        rec = base_record(cfg, shape, full, status="ok" if valid else "invalid",
                          reasons=[] if valid else timing["validity"]["reasons"], knobs=knobs)
        rec.update(timing=timing, memory=out["memory"], telemetry=out["telemetry"],
                   torch_threads=torch.get_num_threads(), wall_s=time.perf_counter() - t0,
                   host={"loadavg_1m_before": load_before, "loadavg_1m_after": _loadavg(),
                         "cpu_count": os.cpu_count()})
        emit({"event": "record", "record": rec})
    return 0


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints (libraries) go to the log, never into the protocol
    sys.stdout = sys.stderr
    job = json.load(sys.stdin)
    threading.Thread(target=_watch_parent, args=(job.get("parent_pid") or os.getppid(),), daemon=True).start()

    def emit(event: dict) -> None:
        proto.write(json.dumps(event, allow_nan=True) + "\n")  # parent sanitises non-finite values
        proto.flush()

    code = execute(job, emit)
    proto.close()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown (seconds with CUDA); everything is flushed


if __name__ == "__main__":
    main()
