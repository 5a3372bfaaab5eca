"""The bench worker: runs configurations and reports one record per configuration as it finishes.

`python -m llmecon.measure.worker` reads one job (JSON) on stdin: the device, the timing knobs, the
thread count and a list of configurations that share a model. It builds the model once per kind
(inference, or fp32-master training) and measures that kind's configurations in ``knobs.rounds`` rounds,
round-robin: round 1 of each configuration, then round 2 of each... (docs/measuring.md §3), counting the
operator calls of each configuration once, after its first round. It prints one JSON line per event on its
protocol channel (its original stdout; anything else written to stdout goes to stderr, which the parent
keeps in <run>/logs/):

    {"event": "ready", "pid": ...}                         torch and transformers are imported
    {"event": "start", "config_id": ..., "round": r}       before a round starts (the timeout clock)
    {"event": "done", "config_id": ..., "round": r}        after a round
    {"event": "pass", "round": r, "rounds": R, "n": k}     after round r of the kind's k configurations
    {"event": "record", "record": {...}}                   a finished record (the parent writes it to disk)

After an OOM or any other failure it exits, so the next configuration starts in a fresh process
(see runner.py). An out-of-memory is recognised by measure.device.out_of_memory_reason: torch's
OutOfMemoryError, and the RuntimeErrors of cuBLAS/cuDNN workspace allocations that are not one.

A job ``{"task": "probe", "device", "dtype", "threads"}`` instead probes the device and measures its ceilings
and prints ``{"event": "probe", "device": {...}, "ceilings": {...}}`` (or ``{"event": "probe_error",
"message"}``): the bench runs it in a short-lived child, so that its own process never holds a CUDA context
(under the EXCLUSIVE_PROCESS compute mode a second process on the GPU fails). It also exits by itself if its parent dies (a watchdog compares getppid()).
The parent is the only writer of records; this process never touches the run folder.

Beyond one device (measure.distributed_run) the same `execute` runs in every rank of a torchrun job, with the
rank's `World`: each configuration is spread over the ranks and timed in lockstep, each round is gathered to rank
0, and only rank 0 emits (its runner writes the records); a failed rank reports to rank 0 through the store.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import threading
import time
import traceback
from typing import Callable

from llmecon.measure.device import backend, out_of_memory_reason
from llmecon.measure.distributed import distributed_block, merge_round, rank_results, wrap
from llmecon.measure.rankfailure import Failures, failure_report
from llmecon.measure.models import build_model, built_shape
from llmecon.measure.probe import measure_ceilings, probe_device
from llmecon.measure.record import base_record, data_parallel_degree
from llmecon.measure.timing import lockstep
from llmecon.measure.window import collectives_into
from llmecon.measure.rounds import combine
from llmecon.measure.workloads import run_workload
from llmecon.records.schema import Knobs

EXIT_AFTER_FAILURE = 3


def _cleanup(device: str) -> None:
    gc.collect()
    backend(device).reset_memory()


def _kinds(configs: list[dict]) -> list[list[dict]]:
    """The configurations grouped by the model they run on (inference or training, on one device or spread the
    same way), in their order."""
    out: dict[tuple, list[dict]] = {}
    for cfg in configs:
        out.setdefault((cfg["model"], cfg["phase"] == "train", cfg.get("parallel", "none")), []).append(cfg)
    return list(out.values())


def execute(job: dict, emit: Callable[[dict], None], world=None) -> int:
    """Run job["configs"] in rounds, emitting events; return 0, or EXIT_AFTER_FAILURE after a failure.

    ``world`` (measure.distributed.World): this process is one rank of several. A configuration with a
    parallelism runs on every rank in lockstep, each round gathered to rank 0, which alone emits; one without
    (the single-device baseline) runs on rank 0 while the others wait. A failure is reported to rank 0 through
    the store instead of emitted (rank 0's watchdog writes the record)."""
    import torch
    import transformers  # noqa: F401  (imported before the first "start": not charged to its timeout)

    device, knobs = job["device"], Knobs.model_validate(job["knobs"])
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    leader = world is None or world.leader
    say = emit if leader else (lambda event: None)
    say({"event": "ready", "pid": os.getpid()})
    for index, group in enumerate(_kinds(job["configs"])):
        spread = group[0].get("parallel", "none") != "none"
        if world is not None and not spread:  # the single-device baseline: rank 0 alone
            if not leader:
                world.wait_for_leader(f"group/{index}", knobs.rounds * len(group) * job.get("timeout_s", 900.0))
                continue
        code = _run_group(group, device, knobs, say, world if spread else None)
        if world is not None and not spread:
            world.release(f"group/{index}")
            continue  # rank 0 ran alone: its failure is recorded, the world is intact, the sweep goes on
        if code:
            return code
    return 0


def _run_group(group: list[dict], device: str, knobs: Knobs, say, world) -> int:
    """One model's configurations, round-robin; with ``world``, spread over it in lockstep."""
    built = None
    wrapping = None
    outs: dict[str, list[dict]] = {c["config_id"]: [] for c in group}
    per_rank: dict[str, list[list[dict]]] = {c["config_id"]: [] for c in group}
    comm: dict[str, list[dict]] = {c["config_id"]: [] for c in group}
    walls: dict[str, float] = dict.fromkeys(outs, 0.0)
    load_before = _loadavg()
    for r in range(knobs.rounds):
        for cfg in group:
            say({"event": "start", "config_id": cfg["config_id"], "round": r})
            t0 = time.perf_counter()
            try:
                if built is None:
                    _cleanup(device)
                    built = build_model(
                        cfg["model"], device=backend(device).torch_device, dtype=cfg["dtype"], layers=cfg.get("layers"),
                        attn_implementation=cfg["attn_implementation"], weights=cfg.get("weights", "random"),
                        train=cfg["phase"] == "train",
                    )
                    if world is not None:
                        wrapping = wrap(built, cfg, world)
                with lockstep(world.agree if world is not None else None), \
                        collectives_into(comm[cfg["config_id"]]) if world is not None else contextlib.nullcontext():
                    out = run_workload(
                        built, cfg["phase"], batch_size=cfg["batch_size"], seq_len=cfg["seq_len"],
                        new_tokens=cfg.get("new_tokens") or 0, dtype=cfg["dtype"], device=device,
                        compile=cfg.get("compile", False), static_cache=cfg.get("static_cache", False),
                        activation_checkpointing=cfg.get("activation_checkpointing", False), knobs=knobs,
                        count_ops=r == 0,
                    )
                if world is not None:
                    out["place"] = {"rank": world.rank, "local_rank": world.local_rank, "host": world.host,
                                    "device": _device_name(device)}
                    gathered = world.gather(out)
                    if world.leader:
                        per_rank[cfg["config_id"]].append(gathered)
                        out = merge_round(gathered, data_parallel_degree(cfg))
                outs[cfg["config_id"]].append(out)
            except Exception as exc:  # every failure becomes a status; the traceback is kept
                if world is not None:
                    failures = Failures(world)
                    failures.report(failure_report(world.rank, cfg["config_id"], exc, out_of_memory_reason(exc)))
                    if not world.leader:  # rank 0's watchdog writes the record (and shares this store client)
                        failures.wait_ack()
                else:
                    say({"event": "record", "record": _failure(cfg, exc, knobs, time.perf_counter() - t0)})
                built = None
                _cleanup(device)
                return EXIT_AFTER_FAILURE
            walls[cfg["config_id"]] += time.perf_counter() - t0
            say({"event": "done", "config_id": cfg["config_id"], "round": r})
        say({"event": "pass", "round": r + 1, "rounds": knobs.rounds, "n": len(group)})
    for cfg in group:
        cid = cfg["config_id"]
        if world is None or world.leader:
            rec = _record(cfg, outs[cid], knobs, walls[cid], load_before)
            if world is not None:
                places = [o["place"] for o in per_rank[cid][0]]
                counted = comm[cid][0] if comm[cid] else None
                rec["distributed"] = distributed_block(
                    cfg, world, wrapping, rank_results(per_rank[cid], places), counted,
                    "measure.commcount: the c10d and functional collectives one untimed step issued on rank 0, "
                    "full-buffer bytes (nccl-tests' sizes)" if counted is not None else None)
            say({"event": "record", "record": rec})
    built = None
    _cleanup(device)
    return 0


def _device_name(device: str) -> str:
    """The device's name as torch reports it (a GPU's product name; "cpu" on a CPU)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def probe(job: dict, emit: Callable[[dict], None]) -> int:
    """Probe job["device"] and measure its ceilings in job["dtype"]; emit one "probe" (or "probe_error") event."""
    import torch

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    try:
        info = probe_device(job["device"])
        ceilings = {job["dtype"]: measure_ceilings(job["device"], job["dtype"])}
    except Exception as exc:
        oom = out_of_memory_reason(exc)
        emit({"event": "probe_error", "message": f"{type(exc).__name__}: {exc}"[:1000], "oom": bool(oom),
              "traceback": traceback.format_exc()[-4000:]})
        return EXIT_AFTER_FAILURE
    emit({"event": "probe", "device": info, "ceilings": ceilings})
    return 0


def _failure(cfg: dict, exc: Exception, knobs: Knobs, wall_s: float) -> dict:
    shape, full = built_shape(cfg["model"], cfg.get("layers"))
    oom = out_of_memory_reason(exc)
    status = "oom" if oom else "error"
    reasons = [f"{type(exc).__name__}: {exc}"[:500]] + ([f"out of memory: {oom}"] if oom else [])
    rec = base_record(cfg, shape, full, status=status, reasons=reasons, knobs=knobs)
    rec["error"] = {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": traceback.format_exc()[-4000:]}
    rec["wall_s"] = wall_s
    return rec


def _record(cfg: dict, rounds: list[dict], knobs: Knobs, wall_s: float, load_before: float | None) -> dict:
    import torch

    shape, full = built_shape(cfg["model"], cfg.get("layers"))
    merged = combine(rounds, knobs)
    valid = merged["timing"]["validity"]["valid"]
    rec = base_record(cfg, shape, full, status="ok" if valid else "invalid",
                      reasons=[] if valid else merged["timing"]["validity"]["reasons"], knobs=knobs)
    rec["work"]["ops"] = merged["ops"]
    rec.update(timing=merged["timing"], memory=merged["memory"], telemetry=merged["telemetry"],
               torch_threads=torch.get_num_threads(), wall_s=wall_s,
               host={"loadavg_1m_before": load_before, "loadavg_1m_after": _loadavg(), "cpu_count": os.cpu_count()})
    return rec


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

    code = probe(job, emit) if job.get("task") == "probe" else execute(job, emit)
    proto.close()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown (seconds with CUDA); everything is flushed


if __name__ == "__main__":
    main()
