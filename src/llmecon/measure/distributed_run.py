"""A bench run over several ranks: `run_distributed` (each rank of a torchrun job) and `run_with_torchrun`
(``bench --nproc N``: this process starts torchrun on this node, and again after a failure).

Under torchrun every rank runs `run_distributed` (measure.distributed says how the ranks work together):

1. rank 0 plans the sweep (``world_size`` from torchrun) or re-reads the run it resumes, and tells the others
   the configurations; a bad option is one line on every rank, before anything runs;
2. every rank takes part in measuring the interconnect (measure.collectives: all-reduce and all-gather bus
   bandwidth at a few sizes); rank 0 probes its device and measures its ceilings as a single-device run does, and
   writes run.json with the world and the interconnect;
3. every rank runs the configurations (worker.execute with the world); rank 0 writes each record as it
   finishes, and its watchdog ends a configuration in which a rank failed or hung with a status, then ends the job.

`run_with_torchrun` runs ``python -m torch.distributed.run --standalone --nproc-per-node N -m
llmecon.measure.distributed_run ...`` and, while configurations are left and the last job wrote at least one
record, starts it again with ``--resume``. When a job ends with no record for the configuration it was running
(rank 0 itself died), that configuration gets an ``error`` record here, so a sweep always moves on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from llmecon.errors import UserError
from llmecon.measure.collectives import measure_collectives
from llmecon.measure.distributed import World, distributed_block, torchrun_env
from llmecon.measure.rankfailure import TermSignal, Watchdog
from llmecon.measure.memcheck import memory_skips
from llmecon.measure.probe import measure_ceilings, probe_device
from llmecon.measure.progress import Progress
from llmecon.measure.record import base_record
from llmecon.measure.runner import Sweep, _environment, worker_env
from llmecon.measure.spec import BenchSpec, plan
from llmecon.measure.models import built_shape
from llmecon.measure.worker import EXIT_AFTER_FAILURE, execute
from llmecon.records.store import finished_config_ids, new_run, open_run, write_record

RUN_DIR_FILE_ENV = "LLMECON_RUN_DIR_FILE"  # rank 0 writes the run folder's path here (bench --nproc reads it)


def _config_device(kind: str) -> str:
    """A distributed configuration's device in its config (and id): the kind; each rank runs on its own."""
    return kind


def _leader_plan(spec: BenchSpec | None, resume: Path | None, world: World) -> dict:
    if resume is not None:
        run = open_run(resume)
        try:
            spec = BenchSpec.from_dict(run.config["spec"])
        except (KeyError, TypeError) as exc:
            raise UserError(f"{resume}/run.json has no bench config to resume ({exc})") from None
        ran = (run.distributed.world_size if run.distributed is not None else 1)
        if ran != world.world_size:
            raise UserError(f"{resume} ran on {ran} ranks; resume it with as many (this job has {world.world_size})")
    if spec.parallel == "none":
        raise UserError(f"this is one of {world.world_size} ranks: say how to spread each configuration over them "
                        "with --parallel ddp|fsdp (training) or tp (prefill, decode, generate)")
    kind = world.device.split(":")[0]
    configs = plan(spec, _config_device(kind), kind, world.world_size)
    return {"spec": spec.to_dict(), "configs": configs, "kind": kind}


def _interconnect(world: World, dtype: str) -> tuple[dict | None, str | None]:
    try:
        return measure_collectives(world.device, dtype), None
    except Exception as exc:  # a run without the measurement is still a run; the reason is kept
        return None, f"{type(exc).__name__}: {exc}"[:500]


def _world_block(world: World, places: list[dict], interconnect: dict | None, reason: str | None) -> dict:
    return {"world_size": world.world_size, "nnodes": world.nnodes, "nproc_per_node": world.local_world_size,
            "backend": world.backend, "launcher": world.launcher,
            "hosts": list(dict.fromkeys(p["host"] for p in places)), "devices": [p["device"] for p in places],
            "interconnect": _interconnect_block(interconnect), "interconnect_reason": reason}


def _interconnect_block(result: dict | None) -> dict | None:
    """run.json's interconnect block from measure.collectives' result (its per-size rows)."""
    if result is None:
        return None
    keys = ("op", "size_bytes", "time_s", "algbw_bytes_per_s", "busbw_bytes_per_s")
    return {"collectives": [{**{k: row[k] for k in keys}, "samples": result.get("samples"),
                             "statistic": result.get("statistic")} for row in result["results"]],
            "backend": result["backend"], "world_size": result["world_size"], "dtype": result.get("dtype"),
            "timing_method": result.get("timing_method"), "definition": result.get("definition")}


def _failure_record(cfg: dict, knobs, world: World, status: str, reasons: list[str], ranks: list[int],
                    reports: list[dict]) -> dict:
    shape, full = built_shape(cfg["model"], cfg.get("layers"))
    rec = base_record(cfg, shape, full, status=status, reasons=reasons, knobs=knobs)
    primary = next((r for r in reports if r["rank"] in ranks), reports[0] if reports else None)
    if status == "error" and primary is not None:
        rec["error"] = {"type": primary["message"].split(":", 1)[0], "message": primary["message"],
                        "traceback": primary.get("traceback")}
    if cfg.get("parallel", "none") != "none":
        rec["distributed"] = distributed_block(cfg, world, "not recorded: the configuration failed", [], None, None,
                                               failed_ranks=ranks)
    return rec


def run_distributed(spec: BenchSpec | None, out_dir, *, resume: Path | None = None, progress: bool = True,
                    on_run_dir: Callable[[Path], None] | None = None, retry: bool = True) -> Path | None:
    """This rank's part of a distributed bench run; rank 0 returns the run folder, the others None.
    ``retry`` False: resuming, run only the configurations with no record at all (not the failed ones)."""
    timeout_s = spec.timeout_s if spec is not None else 900.0
    world = World.start(spec.device if spec is not None else "auto", timeout_s)
    try:
        return _run(world, spec, out_dir, resume, progress, on_run_dir, retry)
    finally:
        world.close()


def _run(world: World, spec, out_dir, resume, progress, on_run_dir, retry) -> Path | None:
    setup: dict | None = None
    if world.leader:
        try:
            setup = _leader_plan(spec, resume, world)
        except UserError as exc:
            setup = {"error": str(exc)}
    setup = world.broadcast(setup)
    if "error" in setup:
        raise UserError(setup["error"])
    spec = BenchSpec.from_dict(setup["spec"])
    kind, configs = setup["kind"], setup["configs"]
    knobs = spec.knobs(kind)
    threads = spec.resolved_threads(kind)
    if threads:
        import torch

        torch.set_num_threads(threads)
    place = {"rank": world.rank, "local_rank": world.local_rank, "host": world.host,
             "device": probe_device(world.device).get("name", world.device)}
    places = world.gather(place)
    run_dir = too_big = None
    if resume is None:
        dtype = spec.resolved_dtype(kind)
        interconnect, reason = _interconnect(world, dtype)
        if world.leader:
            probe = probe_device(world.device)
            ceilings = {dtype: measure_ceilings(world.device, dtype)}
            single = [c for c in configs if c.get("parallel", "none") in ("none", "ddp")]
            too_big = memory_skips(spec, single, probe.get("memory_bytes"))
            meta = {"device": probe, "ceilings": ceilings, "environment": _environment(probe),
                    "distributed": _world_block(world, places, interconnect, reason),
                    "config": {"spec": spec.to_dict(), "device": _config_device(kind), "n_configs": len(configs),
                               "knobs": knobs.model_dump(), "seed": 0,
                               "isolation": f"torchrun: {world.world_size} ranks, one process each; rank 0 writes"}}
            run_dir = new_run(out_dir, meta)
    else:
        run_dir = Path(resume)
    todo = None
    sweep = bar = watchdog = None
    if world.leader:
        _announce(run_dir, on_run_dir)
        done = finished_config_ids(run_dir, any_status=not retry)
        pending = [c for c in configs if c["config_id"] not in done]
        bar = Progress(len(pending), progress, rounds=knobs.rounds)
        sweep = Sweep(run_dir, pending, knobs, bar, threads)
        for cfg in [c for c in pending if c["config_id"] in (too_big or {})]:
            sweep.fail(cfg, "skipped", too_big[cfg["config_id"]])
        todo = [c for c in pending if c["config_id"] in sweep.pending]

        def on_failure(config_id, status, reasons, ranks, reports):
            cfg = sweep.pending.get(config_id) if config_id else None
            if cfg is not None:
                sweep.write(_failure_record(cfg, knobs, world, status, reasons, ranks, reports))

        def on_exit():
            bar.close()
            print(f"llmecon: a configuration failed on {world.world_size} ranks; the job ends (its process group "
                  f"cannot be trusted after a lost rank). Records are kept in {run_dir}; finish with: llmecon bench "
                  f"--resume {run_dir}" + (" --nproc N" if os.environ.get(RUN_DIR_FILE_ENV) else ""),
                  file=sys.stderr, flush=True)
            os._exit(EXIT_AFTER_FAILURE)

        term = TermSignal()
        watchdog = Watchdog(world, spec.timeout_s, on_failure, on_exit, wake_fd=term.fd)
        watchdog.start()
    todo = world.broadcast(todo)

    def emit(event: dict) -> None:
        kind_ = event["event"]
        if kind_ == "start":
            watchdog.mark(event["config_id"])
            bar.begin(sweep.pending.get(event["config_id"]) or todo[0], event.get("round", 0))
        elif kind_ == "done":
            watchdog.mark(None)
            bar.round_done(event["config_id"])
        elif kind_ == "pass":
            bar.pass_done(next(iter(sweep.pending.values()), {"model": "the model"}), event["round"], event["n"])
        elif kind_ == "record":
            sweep.write(event["record"])

    job = {"device": world.device, "knobs": knobs.model_dump(), "configs": todo, "threads": threads,
           "timeout_s": spec.timeout_s}
    try:
        code = execute(job, emit, world)
    except KeyboardInterrupt:
        if world.leader and watchdog.current is not None and watchdog.current in sweep.pending:
            sweep.fail(sweep.pending[watchdog.current], "interrupted", "interrupted (Ctrl-C) while running")
        raise
    if code:
        if world.leader:
            time.sleep(3600)  # the watchdog writes the record and ends this process
        os._exit(code)
    world.barrier()
    if world.leader:
        watchdog.stop()
        watchdog.join()
        term.close()
        bar.close()
        return run_dir
    return None


def _announce(run_dir: Path, on_run_dir) -> None:
    target = os.environ.get(RUN_DIR_FILE_ENV)
    if target:
        Path(target).write_text(str(run_dir), encoding="utf-8")
    if on_run_dir is not None:
        on_run_dir(run_dir)


# ------------------------------------------------------------------------------------------------ bench --nproc

def torchrun_command(nproc: int, spec_file: Path, out_dir, resume: Path | None, progress: bool,
                     retry: bool = True) -> list[str]:
    """The torchrun command line `run_with_torchrun` starts on this node."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "llmecon.measure.distributed_run", "--spec", str(spec_file), "--out", str(out_dir)]
    if resume is not None:
        cmd += ["--resume", str(resume)] + ([] if retry else ["--no-retry"])
    if not progress:
        cmd.append("--quiet")
    return cmd


def run_with_torchrun(spec: BenchSpec | None, out_dir, nproc: int, *, resume: Path | None = None,
                      progress: bool = True, on_run_dir: Callable[[Path], None] | None = None) -> Path:
    """``bench --nproc N``: torchrun with N ranks on this node, again with --resume after a failure, until every
    configuration has a record (or a job ends without writing one: then its configuration gets an error record)."""
    if nproc < 2:
        raise UserError(f"--nproc must be at least 2 (one device needs no torchrun), got {nproc}")
    if spec is not None and spec.parallel == "none":
        raise UserError("--nproc starts ranks that share each configuration: add --parallel ddp|fsdp (training) or "
                        "tp (prefill, decode, generate)")
    if torchrun_env() is not None:
        raise UserError("--nproc starts torchrun itself: inside a torchrun job, drop --nproc")
    run_dir = Path(resume) if resume is not None else None
    announced = False
    retry = True  # the first job retries what a user's --resume asks for; after a failure, only what has no record
    with tempfile.TemporaryDirectory(prefix="llmecon-nproc-") as tmp:
        spec_file, dir_file = Path(tmp) / "spec.json", Path(tmp) / "run_dir"
        spec_file.write_text(json.dumps(spec.to_dict() if spec is not None else {}), encoding="utf-8")
        for _ in range(1000):
            before = len(finished_config_ids(run_dir, any_status=True)) if run_dir is not None else 0
            # torchrun sets OMP_NUM_THREADS=1 anyway, with a banner; the bench sets torch's threads itself
            env = {"OMP_NUM_THREADS": "1", **worker_env(), RUN_DIR_FILE_ENV: str(dir_file)}
            try:
                code = subprocess.call(torchrun_command(nproc, spec_file, out_dir, run_dir, progress, retry), env=env)
            except KeyboardInterrupt:  # torchrun got the Ctrl-C too and passes it to the ranks; say where the run is
                run_dir = run_dir or _written_run_dir(dir_file)
                if run_dir is not None and not announced and on_run_dir is not None:
                    on_run_dir(run_dir)
                raise
            retry = False
            run_dir = run_dir or _written_run_dir(dir_file)
            if run_dir is not None and not announced and on_run_dir is not None:
                on_run_dir(run_dir)
            announced = run_dir is not None
            if code == 0:
                return run_dir
            if run_dir is None:
                raise UserError(f"torchrun exited with code {code} before the run started (its output above says why)")
            if code == 2:  # a usage error, printed by the ranks: starting again would print it again
                raise UserError(f"torchrun exited with code 2 (a usage error, printed above); records in {run_dir}")
            left = _unfinished(run_dir, nproc)
            if not left:
                return run_dir
            if len(finished_config_ids(run_dir, any_status=True)) == before:
                _record_lost_job(run_dir, left[0], code, nproc)
                if len(left) == 1:
                    return run_dir
    return run_dir


def _written_run_dir(dir_file: Path) -> Path | None:
    """The run folder rank 0 wrote into ``dir_file`` (RUN_DIR_FILE_ENV), if it got that far."""
    return Path(dir_file.read_text(encoding="utf-8").strip()) if dir_file.is_file() else None


def _unfinished(run_dir: Path, nproc: int) -> list[dict]:
    run = open_run(run_dir)
    spec = BenchSpec.from_dict(run.config["spec"])
    kind = run.config["device"]
    done = finished_config_ids(run_dir, any_status=True)
    return [c for c in plan(spec, kind, kind, nproc) if c["config_id"] not in done]


def _record_lost_job(run_dir: Path, cfg: dict, code: int, nproc: int) -> None:
    """The torchrun job ended without a record for ``cfg``, the configuration it was on: an error record."""
    run = open_run(run_dir)
    knobs = BenchSpec.from_dict(run.config["spec"]).knobs(run.config["device"])
    shape, full = built_shape(cfg["model"], cfg.get("layers"))
    why = (f"the torchrun job ({nproc} ranks) exited with code {code} without a record for this configuration "
           "(rank 0 died, or torchrun stopped the job); see the output above")
    write_record(run_dir, base_record(cfg, shape, full, status="error", reasons=[why], knobs=knobs))


def main(argv: list[str] | None = None) -> None:
    """``python -m llmecon.measure.distributed_run --spec FILE --out DIR [--resume RUN] [--quiet]``: one rank."""
    parser = argparse.ArgumentParser(prog="llmecon.measure.distributed_run")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no-retry", action="store_true", help="resuming: skip configurations that have any record")
    args = parser.parse_args(argv)
    try:
        doc = json.loads(Path(args.spec).read_text(encoding="utf-8"))
        spec = BenchSpec.from_dict(doc) if doc else None
        run_distributed(spec, args.out, resume=Path(args.resume) if args.resume else None, progress=not args.quiet,
                        retry=not args.no_retry)
    except UserError as exc:
        if os.environ.get("RANK", "0") == "0":  # every rank meets the same bad input; one says so
            print(f"llmecon: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
