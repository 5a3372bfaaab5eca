"""The Python API: what the CLI does, as functions that return what the CLI prints.

``import llmecon`` is lazy (it imports none of torch, pandas or matplotlib); each name below is imported
the first time it is used. The functions defined here compose the library for the commands that bench,
fit or write files; the others are the library's own functions, re-exported by ``llmecon/__init__.py``:

    llmecon.model_info            costmodel.info          llmecon.estimate_inference  estimate.inference
    llmecon.estimate_training     estimate.training       llmecon.article             estimate.article
    llmecon.load_results          records.load            llmecon.list_runs           records.store
    llmecon.Calibration           calibration.document    llmecon.UserError           errors
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from llmecon.measure.distributed import torchrun_env
from llmecon.measure.distributed_run import run_distributed, run_with_torchrun
from llmecon.measure.probe import device_kind, resolve_device
from llmecon.measure.runner import run_bench
from llmecon.measure.spec import DEFAULT_TIMEOUT_S, BenchSpec, default_suite
from llmecon.calibration.document import Calibration
from llmecon.calibration.compare import DEFAULT_CONFIDENCE, DEFAULT_MAX_DROP, compare_runs
from llmecon.calibration.fit import DEFAULT_MAX_HELDOUT_ERROR, calibrate_results
from llmecon.errors import UserError
from llmecon.estimate.dryrun import dry_run, resolve_target
from llmecon.pipeline import MainJob, build_report, run_main_job
from llmecon.records.load import Results, load_results
from llmecon.units import parse_fraction, parse_whole_list
from llmecon.vocab import CALIBRATION_CONVENTION, DEFAULT_OUT, DEFAULT_PRICE_TERM, PHASES, RUNS_FOLDER


def _bench_spec(models, kind: str, *, phases=PHASES, batch_sizes=(1,), seq_lens=(128,), dtype=None, device="auto",
                new_tokens=16, layers=None, attn="sdpa", weights="random", compile=False, static_cache=False,
                activation_checkpointing=False, min_iters=None, min_time_s=None, max_time_s=None, warmup_iters=None,
                rounds=None, precision=None, timeout_s=DEFAULT_TIMEOUT_S, threads=None, isolate=True, name=None,
                memory_check=True, parallel="none", baseline=True) -> BenchSpec:
    """The sweep `bench` and `bench_plan` take: ``models`` None is the default suite for the device ``kind``."""
    if models is None:
        return dataclasses.replace(default_suite(kind), device=device, isolate=isolate, threads=threads,
                                   memory_check=memory_check, parallel=parallel, baseline=baseline,
                                   **({"dtype": dtype} if dtype else {}))
    names = (models,) if isinstance(models, str) else tuple(models)
    return BenchSpec(
        models=tuple(m.strip() for arg in names for m in arg.split(",") if m.strip()),
        phases=tuple(p.strip() for p in (phases.split(",") if isinstance(phases, str) else phases) if p.strip()),
        batch_sizes=parse_whole_list("--batch-size", batch_sizes), seq_lens=parse_whole_list("--seq-len", seq_lens),
        dtype=dtype, device=device, new_tokens=new_tokens, attn_implementation=attn, layers=layers,
        compile=compile, static_cache=static_cache, activation_checkpointing=activation_checkpointing,
        min_iters=min_iters, min_time_s=min_time_s, max_time_s=max_time_s, warmup_iters=warmup_iters,
        rounds=rounds, target_rel_ci=None if precision is None else parse_fraction("--precision", precision),
        timeout_s=timeout_s, isolate=isolate, weights=weights, threads=threads, name=name, memory_check=memory_check,
        parallel=parallel, baseline=baseline)


def bench(models=None, *, phases=PHASES, batch_sizes=(1,), seq_lens=(128,), dtype: str | None = None,
          device: str = "auto", out=DEFAULT_OUT, resume=None, new_tokens: int = 16, layers: int | None = None,
          attn: str = "sdpa", weights: str = "random", compile: bool = False, static_cache: bool = False,
          activation_checkpointing: bool = False, min_iters: int | None = None, min_time_s: float | None = None,
          max_time_s: float | None = None, warmup_iters: int | None = None, rounds: int | None = None,
          precision=None, timeout_s: float = DEFAULT_TIMEOUT_S,
          threads: int | None = None, isolate: bool = True, name: str | None = None, memory_check: bool = True,
          parallel: str = "none", baseline: bool = True, nproc: int | None = None,
          progress: bool = False, on_run_dir=None) -> Results | None:
    """Benchmark models on this machine (`llmecon bench`): one run folder under ``out/runs/``, loaded.

    ``models`` None runs the default suite for the device (then only ``dtype``, ``device``, ``threads``,
    ``isolate``, ``memory_check`` and ``out`` apply); ``resume`` (a run folder) finishes an interrupted run
    with its own configuration. Timing knobs left None take the device kind's defaults: ``rounds`` per
    configuration, interleaved; ``precision`` the stopping rule's target, the relative half-width of the
    median's 95 % interval in a round ('2%' or 0.02; 0 stops at the minimums). Configurations the memory model
    predicts not to fit are recorded as skipped, with the predicted and usable memory in the reason
    (``memory_check=False`` runs them anyway; `bench_plan` shows the prediction). Returns the run's `Results`
    (``.frame``, ``.problems``, ``.paths[0]`` is the run folder).

    Beyond one device (measure.distributed): ``parallel`` ddp or fsdp (training) or tp (prefill, decode,
    generate) spreads every configuration over the ranks of a torchrun job, each kind preceded by the same
    configurations on one device (``baseline``), the scaling efficiency's reference. Called in every rank of a
    torchrun job, it returns the Results on rank 0 and None on the others; ``nproc`` N starts torchrun with N
    ranks on this node itself.

    >>> res = llmecon.bench("tiny", phases="prefill", batch_sizes=(1, 4), device="cpu")   # doctest: +SKIP
    >>> res.frame[["phase", "batch_size", "tokens_per_s"]]                                # doctest: +SKIP
    """
    spec = None
    if resume is None:
        spec = _bench_spec(models, device_kind(resolve_device(device)) if models is None else None,
                           phases=phases, batch_sizes=batch_sizes, seq_lens=seq_lens, dtype=dtype, device=device,
                           new_tokens=new_tokens, layers=layers, attn=attn, weights=weights, compile=compile,
                           static_cache=static_cache, activation_checkpointing=activation_checkpointing,
                           min_iters=min_iters, min_time_s=min_time_s, max_time_s=max_time_s,
                           warmup_iters=warmup_iters, rounds=rounds, precision=precision, timeout_s=timeout_s,
                           threads=threads, isolate=isolate, name=name, memory_check=memory_check,
                           parallel=parallel, baseline=baseline)
    runs, resume = Path(out) / RUNS_FOLDER, Path(resume) if resume else None
    world = torchrun_env()
    if nproc is not None:
        run_dir = run_with_torchrun(spec, runs, nproc, resume=resume, progress=progress, on_run_dir=on_run_dir)
    elif world is not None and world["world_size"] > 1:
        run_dir = run_distributed(spec, runs, resume=resume, progress=progress, on_run_dir=on_run_dir)
        if run_dir is None:  # not rank 0: rank 0 writes and reports
            return None
    else:
        run_dir = run_bench(spec, runs, resume=resume, progress=progress, on_run_dir=on_run_dir)
    return load_results([run_dir])


def bench_plan(models=None, *, device: str = "auto", hardware: str | None = None, calibration=None,
               **sweep) -> dict:
    """The plan of a bench sweep (`llmecon bench --dry-run`), built and run nowhere: per configuration the
    predicted memory by part, whether it fits ``hardware`` (a hardware-sheet id; else this machine's device)
    and a predicted step time, from ``calibration`` (a Calibration or its file) when it covers the target, else
    the datasheet roofline (labelled). Takes `bench`'s sweep keywords (not ``out``, ``resume``, ``progress``);
    returns the dict ``--json`` prints.

    >>> plan = llmecon.bench_plan(hardware="h200")              # the default CUDA suite on an H200
    >>> [(r["model"], r["batch_size"], r["seq_len"]) for r in plan["rows"] if r["phase"] == "train" and not r["fits"]][:2]
    [('llama-3.2-1b', 32, 2048), ('llama-3-8b', 1, 512)]
    """
    target = resolve_target(device, hardware)
    return dry_run(_bench_spec(models, target["kind"], device=device, **sweep), target, calibration)


def calibrate(runs, output: str | os.PathLike | None = None, *, convention: str = CALIBRATION_CONVENTION,
              max_heldout_error=DEFAULT_MAX_HELDOUT_ERROR, force: bool = False,
              per_layer_overhead: bool = True) -> Calibration:
    """Fit the step-time model per (hardware, dtype, phase) to measured runs (`llmecon calibrate`), and save it
    to ``output`` when given. ``max_heldout_error`` as a fraction or a percentage ('50%');
    ``per_layer_overhead=False`` fits one overhead t0 whatever the model's depth.

    >>> calib = llmecon.calibrate("results/", "calibration.json")      # doctest: +SKIP
    >>> print(calib.describe())                                        # doctest: +SKIP
    """
    threshold = parse_fraction("--max-heldout-error", max_heldout_error)
    if not threshold > 0:
        raise UserError(f"--max-heldout-error must be > 0, got {max_heldout_error!r}")
    calib = calibrate_results(load_results(runs), convention=convention, max_heldout_error=threshold, force=force,
                              per_layer=per_layer_overhead)
    if output is not None:
        calib.save(output)
    return calib


def compare(base, new, *, max_drop=DEFAULT_MAX_DROP, confidence=DEFAULT_CONFIDENCE,
            normalize: str | None = None) -> dict:
    """Did throughput drop from BASE to NEW (`llmecon compare`)? Decided on a ``confidence`` interval of the
    step-time ratio across rounds; ``max_drop`` as a fraction or '5%'; ``normalize="ceiling"`` compares
    efficiency against each run's measured ceilings. Returns {rows, regressions, inconclusive, work_changed,
    matched, max_drop, confidence, normalize, problems}.

    >>> result = llmecon.compare("base/", "new/", max_drop="10%")      # doctest: +SKIP
    >>> result["regressions"], [r["verdict"] for r in result["rows"]]  # doctest: +SKIP
    (0, ['no change', 'no change', 'inconclusive'])
    """
    result, problems = compare_runs(base, new, parse_fraction("--max-drop", max_drop),
                                    confidence=parse_fraction("--confidence", confidence), normalize=normalize)
    return {**result, "problems": problems}


def report(runs, out_dir="report", *, calibration=None, term: str = DEFAULT_PRICE_TERM,
           title: str | None = None, tpot_slo=None) -> Path:
    """Write one self-contained HTML page of figures and tables about the runs (`llmecon report`); returns
    the path of its index.html.

    >>> llmecon.report("results/", "report/", calibration="calibration.json")   # doctest: +SKIP
    PosixPath('report/index.html')
    """
    return build_report(runs, out_dir, calibration=calibration, term=term, title=title, tpot_slo=tpot_slo)


def run(out_dir=DEFAULT_OUT, *, device: str = "auto", term: str = DEFAULT_PRICE_TERM, progress: bool = False,
        on_run_dir=None, log=None) -> MainJob:
    """The main job (`llmecon run`): bench this machine's default suite, calibrate, price, write the report.

    >>> job = llmecon.run(device="cpu")                                # doctest: +SKIP
    >>> job.report_path                                                # doctest: +SKIP
    PosixPath('llmecon-out/report/index.html')
    """
    return run_main_job(out_dir, device=device, term=term, progress=progress, on_run_dir=on_run_dir, log=log)
