"""Sweeps: model x phase x seq_len x batch, each configuration isolated, every outcome a record.

`run_bench(spec, out_dir)`:

1. **Preflight, before anything runs**: the device is resolved (`--device cuda` without CUDA is a
   UserError before any model is built), every model's shape is loaded, and every shape beyond the
   model's `max_position_embeddings` (seq_len, plus new_tokens for decode) is refused.
2. The device is probed and its ceilings (GEMM FLOP/s in the run's dtype, copy bandwidth) measured
   once; `results.new_run` writes run.json with them and the full config.
3. **Isolation.** Each model's configurations run in a worker process (`python -m
   llmecon.bench.worker`, its own session so that Ctrl-C reaches only us) that builds the model
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
   - Ctrl-C: the worker is killed, the configuration in flight is recorded as `interrupted`, every
     finished record stays, and KeyboardInterrupt propagates (the CLI exits 130).
   - `resume=RUN_DIR` re-reads the run's own config (the spec passed in is ignored; the ceilings stay
     those in run.json) and runs only the configurations
     without a final record (`results.finished_config_ids`): same config ids, error/timeout/
     interrupted ones retried.
   With `isolate=False` everything runs in this process (no timeout; for debugging).
4. Progress: a rich bar with ETA on a terminal, one plain line per configuration otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from llmecon import results
from llmecon.errors import UserError

PHASES = ("prefill", "decode", "train")
BENCH_DTYPES = ("fp32", "tf32", "bf16", "fp16")
ATTN = ("sdpa", "eager")
STARTUP_TIMEOUT_S = 300.0  # a worker importing torch + transformers on a loaded host, before its first config


def _device_ok(device: str) -> bool:
    d = device.strip().lower()
    return d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit())


@dataclass(frozen=True)
class BenchSpec:
    """One sweep: every combination of models x phases x seq_lens x batch_sizes."""

    models: tuple[str, ...]
    phases: tuple[str, ...] = PHASES
    batch_sizes: tuple[int, ...] = (1,)
    seq_lens: tuple[int, ...] = (128,)
    dtype: str = "fp32"
    device: str = "auto"
    new_tokens: int = 16
    attn_implementation: str = "sdpa"
    layers: int | None = None
    compile: bool = False
    static_cache: bool = False
    activation_checkpointing: bool = False
    min_iters: int = 10
    min_time_s: float = 1.0
    max_time_s: float = 30.0
    timeout_s: float = 900.0
    isolate: bool = True
    warmup_iters: int = 3
    weights: str = "random"
    threads: int | None = None  # CPU: torch.set_num_threads for the ceilings and the workers (None: torch's default)

    def __post_init__(self):
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise UserError("at least one model is needed (a preset, a config.json or a local model folder)")
        if not self.phases:
            raise UserError("at least one phase is needed: prefill, decode, train")
        for p in self.phases:
            if p not in PHASES:
                raise UserError(f"unknown phase {p!r}; choose from {', '.join(PHASES)}")
        if self.dtype not in BENCH_DTYPES:
            raise UserError(f"dtype {self.dtype!r} cannot be benchmarked; choose one of {', '.join(BENCH_DTYPES)}")
        if not isinstance(self.device, str) or not _device_ok(self.device):
            raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.attn_implementation not in ATTN:
            raise UserError(f"attention implementation must be sdpa or eager, got {self.attn_implementation!r}")
        if self.weights not in ("random", "local"):
            raise UserError(f"weights must be random or local, got {self.weights!r}")
        for name, values in (("batch size", self.batch_sizes), ("sequence length", self.seq_lens)):
            if not values:
                raise UserError(f"at least one {name} is needed")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise UserError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("new_tokens", self.new_tokens), ("min_iters", self.min_iters)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.warmup_iters, bool) or not isinstance(self.warmup_iters, int) or self.warmup_iters < 0:
            raise UserError(f"warmup_iters must be an integer >= 0, got {self.warmup_iters!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise UserError(f"--threads must be a positive integer, got {self.threads!r}")
        if self.layers is not None and (isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 1):
            raise UserError(f"--layers must be a positive integer, got {self.layers!r}")
        for name, v in (("min_time_s", self.min_time_s), ("max_time_s", self.max_time_s), ("timeout_s", self.timeout_s)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or v == float("inf"):
                raise UserError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.max_time_s <= 0 or self.timeout_s <= 0:
            raise UserError("max_time_s and timeout_s must be > 0")
        if self.min_time_s > self.max_time_s:  # the cap would end every window first: every row invalid
            raise UserError(f"min_time_s ({self.min_time_s:g} s) exceeds max_time_s ({self.max_time_s:g} s), the cap "
                            "on one timed window; raise --max-time or lower --min-time")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "BenchSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)


def default_suite(device_kind: str) -> BenchSpec:
    """A sweep sized for the device: about a minute on a 2-core CPU; a few minutes on one big GPU."""
    if device_kind == "cpu":
        return BenchSpec(models=("tiny",), phases=PHASES, batch_sizes=(1, 4), seq_lens=(64, 256), dtype="fp32",
                         device="cpu", new_tokens=16, min_iters=5, min_time_s=0.3, max_time_s=5.0,
                         warmup_iters=2, timeout_s=300.0)
    if device_kind == "cuda":
        return BenchSpec(models=("llama-3.2-1b", "llama-3-8b"), phases=PHASES, batch_sizes=(1, 8, 32),
                         seq_lens=(512, 2048), dtype="bf16", device="cuda", new_tokens=32, min_iters=10,
                         min_time_s=1.0, max_time_s=10.0, timeout_s=600.0)
    raise UserError(f"no default suite for device kind {device_kind!r} (cpu or cuda)")


# ---------------------------------------------------------------------------------------- planning

def plan(spec: BenchSpec, device: str) -> list[dict]:
    """Every configuration of the sweep, ordered model, phase, seq_len, then increasing batch.

    Raises UserError (before anything runs) for an unknown model or a shape beyond the model's
    context length.
    """
    from llmecon.bench.models import built_shape

    configs = []
    for model in dict.fromkeys(spec.models):  # a value given twice is one configuration, measured once
        _, full = built_shape(model, spec.layers)
        if spec.weights == "local":
            _require_local_weights(model)
        ctx = full.max_position_embeddings
        for phase in dict.fromkeys(spec.phases):
            for seq in dict.fromkeys(spec.seq_lens):
                need = seq + (spec.new_tokens if phase == "decode" else 0)
                if need > ctx:
                    what = f"seq_len {seq} + new_tokens {spec.new_tokens} = {need}" if phase == "decode" else f"seq_len {seq}"
                    raise UserError(f"{phase}: {what} exceeds {model}'s max_position_embeddings {ctx}")
                for batch in sorted(set(spec.batch_sizes)):
                    cfg = {
                        "model": model, "phase": phase, "batch_size": batch, "seq_len": seq,
                        "new_tokens": spec.new_tokens if phase == "decode" else None,
                        "dtype": spec.dtype, "device": device, "attn_implementation": spec.attn_implementation,
                        "compile": spec.compile, "static_cache": spec.static_cache and phase == "decode",
                        "layers": spec.layers, "activation_checkpointing": spec.activation_checkpointing and phase == "train",
                        "weights": spec.weights,
                    }
                    cfg["config_id"] = results.make_config_id(cfg)
                    configs.append(cfg)
    return configs


def _require_local_weights(model: str) -> None:
    """--weights local needs a model folder holding weight files (read from disk only, never the Hub)."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise UserError(f"--weights local: {model!r} is not a local model folder (real weights are read only "
                        "from one; a preset or a config.json gets random weights)")
    if not any(p.suffix in (".safetensors", ".bin") for p in folder.iterdir() if p.is_file()):
        raise UserError(f"--weights local: {folder} has no weight files (*.safetensors or *.bin)")


def _timing_knobs(spec: BenchSpec) -> dict:
    return {"warmup_iters": spec.warmup_iters, "min_iters": spec.min_iters, "min_time_s": spec.min_time_s,
            "max_time_s": spec.max_time_s}


# ---------------------------------------------------------------------------------------- progress

class _Progress:
    """A rich progress bar with ETA on a terminal; one plain line per configuration otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled
        self._bar = None
        if not enabled:
            return
        from rich.console import Console

        self.console = Console(stderr=True)
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task("bench", total=total)

    def begin(self, cfg: dict) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=_label(cfg))

    def finish(self, rec: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        line = f"[{self.done}/{self.total}] {_label(rec['config'])}: {_summary(rec)}"
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
            self._bar.update(self._task, advance=1)
        else:
            self.console.print(line, highlight=False, markup=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _label(cfg: dict) -> str:
    return f"{cfg['model']} {cfg['phase']} b={cfg['batch_size']} s={cfg['seq_len']}"


def _summary(rec: dict) -> str:
    t = rec.get("timing") or {}
    med = t.get("median_s")
    if rec["status"] in ("ok", "invalid") and med:
        scale = (rec.get("model") or {}).get("time_scale") or 1.0
        tps = rec["work"]["tokens_per_step"] / (med * scale)
        note = f", whole model extrapolated x{scale:.3g}" if scale != 1.0 else ""
        return (f"{rec['status']} {tps:,.0f} tokens/s (median {med * 1e3:.3g} ms as built{note}, "
                f"n={t.get('n_samples')})") if note else \
            f"{rec['status']} {tps:,.0f} tokens/s (median {med * 1e3:.3g} ms, n={t.get('n_samples')})"
    return f"{rec['status']}: {rec.get('reason')}"


# ---------------------------------------------------------------------------------------- running

class _Sweep:
    """Bookkeeping of one run: which configurations are pending, writes records, OOM skipping."""

    def __init__(self, run_dir: Path, configs: list[dict], knobs: dict, progress: _Progress):
        self.run_dir, self.knobs, self.progress = run_dir, knobs, progress
        self.pending = {c["config_id"]: c for c in configs}
        self.order = [c["config_id"] for c in configs]
        self.threads: int | None = None

    def shapes(self, cfg):
        from llmecon.bench.models import built_shape

        return built_shape(cfg["model"], cfg.get("layers"))

    def write(self, rec: dict) -> None:
        cid = rec["config_id"]
        results.write_record(self.run_dir, rec)
        self.pending.pop(cid, None)
        self.progress.finish(rec)
        if rec["status"] == "oom":
            cfg = rec["config"]
            for other in [self.pending[i] for i in self.order if i in self.pending]:
                if (other["model"], other["phase"], other["seq_len"]) == (cfg["model"], cfg["phase"], cfg["seq_len"]) \
                        and other["batch_size"] > cfg["batch_size"]:
                    self.fail(other, "skipped", f"larger_than_oom_batch (batch {cfg['batch_size']} ran out of memory)")

    def fail(self, cfg: dict, status: str, reason: str, extra: dict | None = None) -> None:
        from llmecon.bench.worker import base_record

        shape, full = self.shapes(cfg)
        rec = base_record(cfg, shape, full, status=status, reason=reason, knobs=self.knobs)
        if extra:
            rec.update(extra)
        self.write(rec)

    def groups(self) -> list[list[dict]]:
        out: dict[tuple, list[dict]] = {}
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


def _run_group_isolated(sweep: _Sweep, group: list[dict], device: str, timeout_s: float, n_worker: list[int]) -> None:
    """Run one model's configurations in worker processes until each of them has a record."""
    while True:
        todo = [c for c in group if c["config_id"] in sweep.pending]
        if not todo:
            return
        n_worker[0] += 1
        logs = sweep.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_path = logs / f"worker-{n_worker[0]:03d}.log"
        job = {"device": device, "timing": sweep.knobs, "configs": todo, "parent_pid": os.getpid(),
               "threads": sweep.threads}
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "llmecon.bench.worker"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
        events: queue.Queue = queue.Queue()

        def reader(stream=proc.stdout):
            for line in stream:
                events.put(line)
            events.put(None)

        threading.Thread(target=reader, daemon=True).start()
        current: dict | None = None
        started = time.monotonic()
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
            while True:
                try:
                    line = events.get(timeout=0.2)
                except queue.Empty:
                    limit = timeout_s if current is not None else max(timeout_s, STARTUP_TIMEOUT_S)
                    if time.monotonic() - started > limit:
                        _kill(proc)
                        target = current or next((c for c in todo if c["config_id"] in sweep.pending), None)
                        if target is not None:
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
                    started = time.monotonic()
                    sweep.progress.begin(current or todo[0])
                elif event["event"] == "record":
                    sweep.write(event["record"])
                    current = None
                    started = time.monotonic()  # between configurations: the startup limit applies
        except BaseException:
            _kill(proc)
            if current is not None and current["config_id"] in sweep.pending:
                sweep.fail(current, "interrupted", "interrupted (Ctrl-C) while running")
            raise
        finally:
            _kill(proc)
        if all(c["config_id"] in sweep.pending for c in todo):  # a worker that reported nothing
            sweep.fail(todo[0], "error", f"worker process exited with code {proc.returncode} without a record: "
                       f"{_log_tail(log_path) or 'no output'}")


def _run_group_inprocess(sweep: _Sweep, group: list[dict], device: str) -> None:
    from llmecon.bench.worker import execute

    while True:
        todo = [c for c in group if c["config_id"] in sweep.pending]
        if not todo:
            return
        current: list[dict | None] = [None]

        def emit(event):
            if event["event"] == "start":
                current[0] = sweep.pending.get(event["config_id"])
                sweep.progress.begin(current[0] or todo[0])
            elif event["event"] == "record":
                sweep.write(event["record"])
                current[0] = None

        try:
            execute({"device": device, "timing": sweep.knobs, "configs": todo, "threads": sweep.threads}, emit)
        except KeyboardInterrupt:
            if current[0] is not None:
                sweep.fail(current[0], "interrupted", "interrupted (Ctrl-C) while running")
            raise


def run_bench(spec: BenchSpec, out_dir, *, resume: Path | None = None, progress: bool = True,
              on_run_dir: Callable[[Path], None] | None = None) -> Path:
    """Run the sweep (or the unfinished part of `resume`'s run) and return the run folder."""
    from llmecon.bench.probe import device_kind, measure_ceilings, probe_device, resolve_device

    if resume is not None:
        run_dir = Path(resume)
        meta = results.open_run(run_dir)
        try:
            spec = BenchSpec.from_dict(meta["config"]["spec"])
        except (KeyError, TypeError) as exc:
            raise UserError(f"{run_dir}/run.json has no bench config to resume ({exc})") from None
        device = meta["config"]["device"]
        if device_kind(device) == "cuda":
            resolve_device(device)  # still there?
        configs = plan(spec, device)
    else:
        device = resolve_device(spec.device)
        configs = plan(spec, device)  # refuses impossible shapes before anything runs
        import torch

        previous = torch.get_num_threads()
        if spec.threads is not None:
            torch.set_num_threads(spec.threads)
        try:
            probe = probe_device(device)
            ceilings = {spec.dtype: measure_ceilings(device, spec.dtype)}
        finally:
            torch.set_num_threads(previous)
        meta = {"device": probe, "ceilings": ceilings,
                "config": {"spec": spec.to_dict(), "device": device, "n_configs": len(configs),
                           "timing": _timing_knobs(spec), "seed": 0,
                           "isolation": "one worker process per model, fresh after any failure"
                           if spec.isolate else "in-process (no isolation, no timeout)"}}
        run_dir = results.new_run(out_dir, meta)
    if on_run_dir is not None:
        on_run_dir(run_dir)
    done = results.finished_config_ids(run_dir)
    todo = [c for c in configs if c["config_id"] not in done]
    bar = _Progress(len(todo), progress)
    sweep = _Sweep(run_dir, todo, _timing_knobs(spec), bar)
    sweep.threads = spec.threads
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


def parse_int_list(text: str | Iterable[int], name: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32); UserError on anything else."""
    if not isinstance(text, str):
        return tuple(text)
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise UserError(f"{name} must be a comma-separated list of positive integers, got {text!r}")
        out.append(int(part))
    if not out:
        raise UserError(f"{name} must not be empty")
    return tuple(out)
