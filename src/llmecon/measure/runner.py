"""Sweeps: model x phase x seq_len x batch, each configuration isolated, every outcome a record.

`run_bench(spec, out_dir)`:

1. **Preflight, before anything runs**: the device is resolved (`--device cuda` without CUDA is a
   UserError before any model is built), every model's shape is loaded, and every shape beyond the
   model's `max_position_embeddings` (seq_len, plus new_tokens for decode, new_tokens - 1 for generate) is refused.
2. The device is probed and its ceilings (GEMM FLOP/s in the run's dtype, copy bandwidth) measured
   once; `records.store.new_run` writes run.json with them and the full config. On a GPU this happens in
   a short-lived child process (the worker's "probe" task), so this process never creates a CUDA context:
   it would hold one for the whole sweep, and under the EXCLUSIVE_PROCESS compute mode (recorded in
   run.json's device block) every worker would then fail to start.
3. **Isolation.** Each model's configurations run in a worker process (`python -m
   llmecon.measure.worker`, its own session so that Ctrl-C reaches only us) that builds the model
   once per phase kind (inference, or fp32-master training) and runs the configurations in order,
   reporting each record as it finishes; the parent writes it atomically. After any failure the
   worker exits and the model's remaining configurations continue in a fresh process. This is the
   "equivalent isolation" the design allows: starting a python that imports torch and transformers
   costs 3-4 s on a small CPU host, so one process per configuration would triple a CPU sweep,
   while a failed configuration still never leaks state into the next one. Worker logs go to
   <run>/logs/. A worker exits by itself when the parent dies (SIGKILL included).
   - OOM -> status `oom`; the larger batches of that (model, phase, seq_len) become `skipped` with
     reason `larger_than_oom_batch` (batches run in increasing order).
   - an exception -> `error` with the message (and traceback in the record); a dead worker ->
     `error` with its exit code and the tail of its log; a configuration running longer than
     `timeout_s` (from its start, model build included) -> the worker is killed, status `timeout`.
   - Ctrl-C: the worker is killed; every configuration with a round started and no record yet (rounds
     are interleaved, so several) is recorded as `interrupted`; every finished record stays, and
     KeyboardInterrupt propagates (the CLI exits 130).
   - `resume=RUN_DIR` re-reads the run's own config (the spec passed in is ignored; the ceilings stay
     those in run.json) and runs only the configurations without a final record
     (`records.store.finished_config_ids`): same config ids, error/timeout/interrupted ones retried.
   With `isolate=False` everything runs in this process (no timeout; for debugging).
4. Progress: a rich bar with ETA on a terminal, one plain line per configuration otherwise.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from llmecon.measure.memcheck import memory_skips
from llmecon.measure.models import built_shape
from llmecon.measure.probe import device_kind, measure_ceilings, probe_device, resolve_device
from llmecon.measure.progress import Progress
from llmecon.measure.record import base_record
from llmecon.measure.spec import BenchSpec, plan
from llmecon.measure.worker import execute
from llmecon.errors import UserError
from llmecon.records.environment import environment
from llmecon.records.schema import Knobs
from llmecon.records.store import finished_config_ids, new_run, open_run, write_record

STARTUP_TIMEOUT_S = 300.0  # a worker importing torch + transformers on a loaded host, before its first config
PROBE_TIMEOUT_S = 300.0    # the probe child: import torch, create a context, two ceilings of a few seconds each


class Sweep:
    """Bookkeeping of one run: which configurations are pending, writes records, OOM skipping."""

    def __init__(self, run_dir: Path, configs: list[dict], knobs: Knobs, progress: Progress, threads: int | None):
        self.run_dir, self.knobs, self.progress, self.threads = run_dir, knobs, progress, threads
        self.pending = {c["config_id"]: c for c in configs}
        self.order = [c["config_id"] for c in configs]
        self.lock = threading.RLock()  # a distributed run's watchdog thread writes too (measure.distributed)

    def write(self, rec: dict) -> None:
        with self.lock:
            self._write(rec)

    def _write(self, rec: dict) -> None:
        if rec["config_id"] not in self.pending:
            return  # already ended (a distributed run's watchdog and its main thread may both get there)
        write_record(self.run_dir, rec)
        self.pending.pop(rec["config_id"], None)
        self.progress.finish(rec)
        if rec["status"] == "oom":
            cfg = rec["config"]
            for other in [self.pending[i] for i in self.order if i in self.pending]:
                if (other["model"], other["phase"], other["seq_len"], other.get("parallel", "none")) == (
                        cfg["model"], cfg["phase"], cfg["seq_len"], cfg.get("parallel", "none")) \
                        and other["batch_size"] > cfg["batch_size"]:
                    self.fail(other, "skipped", f"larger_than_oom_batch (batch {cfg['batch_size']} ran out of memory)")

    def fail(self, cfg: dict, status: str, reason: str) -> None:
        shape, full = built_shape(cfg["model"], cfg.get("layers"))
        self.write(base_record(cfg, shape, full, status=status, reasons=[reason], knobs=self.knobs))

    def groups(self) -> list[list[dict]]:
        out: dict[str, list[dict]] = {}
        for cid in self.order:
            if cid in self.pending:
                c = self.pending[cid]
                out.setdefault(c["model"], []).append(c)
        return list(out.values())


def _log_tail(path: Path, n: int = 6) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in lines[-n:])[-600:]


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own session/group
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _progress_event(sweep: Sweep, event: dict) -> None:
    if event["event"] == "done":
        sweep.progress.round_done(event["config_id"])
    else:
        sweep.progress.pass_done(next(iter(sweep.pending.values()), {"model": "the model"}), event["round"], event["n"])


def _run_group_isolated(sweep: Sweep, group: list[dict], device: str, timeout_s: float, n_worker: list[int]) -> None:
    """Run one model's configurations in worker processes until each of them has a record."""
    while True:
        todo = [c for c in group if c["config_id"] in sweep.pending]
        if not todo:
            return
        n_worker[0] += 1
        logs = sweep.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_path = logs / f"worker-{n_worker[0]:03d}.log"
        job = {"device": device, "knobs": sweep.knobs.model_dump(), "configs": todo, "parent_pid": os.getpid(),
               "threads": sweep.threads}
        env = worker_env()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "llmecon.measure.worker"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
        events: queue.Queue = queue.Queue()

        def reader(stream=proc.stdout):
            for line in stream:
                events.put(line)
            events.put(None)

        threading.Thread(target=reader, daemon=True).start()
        current: dict | None = None  # the configuration whose round started last
        begun: list[dict] = []       # configurations with a round started and no record yet (rounds interleave)
        in_round = False                 # a round is running (its timeout applies), or the worker is between
        started = time.monotonic()
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
            while True:
                try:
                    line = events.get(timeout=0.2)
                except queue.Empty:
                    limit = timeout_s if in_round else max(timeout_s, STARTUP_TIMEOUT_S)
                    if time.monotonic() - started > limit:
                        _kill(proc)
                        target = (current if in_round else None) or next(
                            (c for c in todo if c["config_id"] in sweep.pending), None)
                        if target is not None and target["config_id"] in sweep.pending:
                            sweep.fail(target, "timeout", f"ran longer than timeout_s={timeout_s:g} s (worker killed)")
                        current = None
                        break
                    continue
                if line is None:  # worker closed its channel: finished or died
                    code = proc.wait()
                    if current is not None and current["config_id"] in sweep.pending:
                        sweep.fail(current, "error", f"worker process exited with code {code} while running: "
                                   f"{_log_tail(log_path) or 'no output'}")
                    break
                try:
                    event = json.loads(line)
                except ValueError:  # not ours (the worker routes stray output to its log; be safe anyway)
                    continue
                if event["event"] == "start":
                    current = sweep.pending.get(event["config_id"])
                    if current is not None and current not in begun:
                        begun.append(current)
                    in_round, started = True, time.monotonic()
                    sweep.progress.begin(current or todo[0], event.get("round", 0))
                elif event["event"] in ("done", "pass"):
                    _progress_event(sweep, event)
                    in_round, started = False, time.monotonic()  # between rounds: the startup limit applies
                elif event["event"] == "record":
                    sweep.write(event["record"])
                    in_round, started = False, time.monotonic()
        except BaseException:
            _kill(proc)
            for cfg in begun:  # their finished rounds die with the worker: --resume measures them again
                if cfg["config_id"] in sweep.pending:
                    sweep.fail(cfg, "interrupted", "interrupted (Ctrl-C) while running" if cfg is current
                               else "interrupted (Ctrl-C) before its last round")
            raise
        finally:
            _kill(proc)
        if all(c["config_id"] in sweep.pending for c in todo):  # a worker that reported nothing
            sweep.fail(todo[0], "error", f"worker process exited with code {proc.returncode} without a record: "
                       f"{_log_tail(log_path) or 'no output'}")


def _run_group_inprocess(sweep: Sweep, group: list[dict], device: str) -> None:
    while True:
        todo = [c for c in group if c["config_id"] in sweep.pending]
        if not todo:
            return
        current: list[dict | None] = [None]

        def emit(event):
            if event["event"] == "start":
                current[0] = sweep.pending.get(event["config_id"])
                sweep.progress.begin(current[0] or todo[0], event.get("round", 0))
            elif event["event"] in ("done", "pass"):
                _progress_event(sweep, event)
            elif event["event"] == "record":
                sweep.write(event["record"])
                current[0] = None

        try:
            execute({"device": device, "knobs": sweep.knobs.model_dump(), "configs": todo, "threads": sweep.threads},
                    emit)
        except KeyboardInterrupt:
            if current[0] is not None:
                sweep.fail(current[0], "interrupted", "interrupted (Ctrl-C) while running")
            raise


def worker_env() -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def probe_in_child(device: str, dtype: str, threads: int | None, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[dict, dict]:
    """(device block, {dtype: ceilings}) measured by a child process that exits afterwards (worker.probe)."""
    job = {"task": "probe", "device": device, "dtype": dtype, "threads": threads}
    try:
        proc = subprocess.run([sys.executable, "-m", "llmecon.measure.worker"], input=json.dumps(job).encode(),
                              capture_output=True, timeout=timeout_s, env=worker_env())
    except subprocess.TimeoutExpired:
        raise UserError(f"probing {device} took longer than {timeout_s:g} s (is the GPU busy or hung?)") from None
    events = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    for event in events:
        if event.get("event") == "probe":
            return event["device"], event["ceilings"]
        if event.get("event") == "probe_error":
            what = "ran out of memory measuring its ceilings" if event.get("oom") else "could not be probed"
            raise UserError(f"{device} {what}: {event['message']}")
    tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
    raise UserError(f"probing {device}: the probe process exited with code {proc.returncode}: "
                    f"{' | '.join(tail) or 'no output'}")


def _probe(spec: BenchSpec, device: str, kind: str) -> tuple[dict, dict]:
    """The device block and the ceilings: in a child on a GPU (or when isolate and asked), else here."""
    dtype = spec.resolved_dtype(kind)
    threads = spec.resolved_threads(kind)
    if spec.isolate and kind == "cuda":
        return probe_in_child(device, dtype, threads)
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return probe_device(device), {dtype: measure_ceilings(device, dtype)}
    finally:
        torch.set_num_threads(previous)


def _environment(probe: dict) -> dict:
    """run.json's environment: the packages and git checkout, with CUDA and the driver from the probe."""
    env = environment()
    for key in ("cuda", "driver"):
        env[key] = probe.get(key)
        if env[key] is not None:
            env["unavailable"].pop(key, None)
        else:
            env["unavailable"][key] = ("not applicable: CPU run" if probe.get("kind") == "cpu"
                                       else probe.get("telemetry_reason") or "not reported")
    return env


def run_bench(spec: BenchSpec, out_dir, *, resume: Path | None = None, progress: bool = True,
              on_run_dir: Callable[[Path], None] | None = None) -> Path:
    """Run the sweep (or the unfinished part of `resume`'s run) and return the run folder."""
    too_big: dict[str, str] = {}  # config_id -> why it is skipped: predicted not to fit (measure.memcheck)
    if resume is not None:
        run_dir = Path(resume)
        run = open_run(run_dir)
        try:
            spec = BenchSpec.from_dict(run.config["spec"])
            device = run.config["device"]
        except (KeyError, TypeError) as exc:
            raise UserError(f"{run_dir}/run.json has no bench config to resume ({exc})") from None
        kind = device_kind(device)
        if kind == "cuda":
            resolve_device(device)  # still there?
        knobs = spec.knobs(kind)
        configs = plan(spec, device, kind)
    else:
        device = resolve_device(spec.device)
        kind = device_kind(device)
        knobs = spec.knobs(kind)
        configs = plan(spec, device, kind)  # refuses impossible shapes before anything runs
        probe, ceilings = _probe(spec, device, kind)
        too_big = memory_skips(spec, configs, probe.get("memory_bytes"))
        meta = {"device": probe, "ceilings": ceilings, "environment": _environment(probe),
                "config": {"spec": spec.to_dict(), "device": device, "n_configs": len(configs),
                           "knobs": knobs.model_dump(), "seed": 0,
                           "isolation": "one worker process per model, fresh after any failure"
                           if spec.isolate else "in-process (no isolation, no timeout)"}}
        run_dir = new_run(out_dir, meta)
    if on_run_dir is not None:
        on_run_dir(run_dir)
    done = finished_config_ids(run_dir)
    todo = [c for c in configs if c["config_id"] not in done]
    bar = Progress(len(todo), progress, rounds=knobs.rounds)
    sweep = Sweep(run_dir, todo, knobs, bar, spec.resolved_threads(kind))
    for cfg in [c for c in todo if c["config_id"] in too_big]:
        sweep.fail(cfg, "skipped", too_big[cfg["config_id"]])
    n_worker = [len(list((run_dir / "logs").glob("worker-*.log"))) if (run_dir / "logs").is_dir() else 0]
    try:
        for group in sweep.groups():
            if spec.isolate:
                _run_group_isolated(sweep, group, device, spec.timeout_s, n_worker)
            else:
                _run_group_inprocess(sweep, group, device)
    finally:
        bar.close()
    return run_dir
