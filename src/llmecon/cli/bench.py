"""`llmecon bench`: measure real models on this machine's accelerator (or CPU) and keep every number."""

from __future__ import annotations

from pathlib import Path

import click

from llmecon.api import bench as run_sweep
from llmecon.api import bench_plan
from llmecon.cli._output import echo_json, frame_records, show, table, warn
from llmecon.cli._views import print_measurements
from llmecon.errors import UserError
from llmecon.measure.spec import DEFAULT_CPU_THREADS, DEFAULT_TIMEOUT_S
from llmecon.measure.timing import CAP_STEPS, DEFAULT_KNOBS
from llmecon.units import binary_bytes, si
from llmecon.vocab import (ATTN_IMPLEMENTATIONS, BENCH_DTYPES, BENCH_PHASES, DEFAULT_OUT, GENERATE, PARALLEL_PHASES,
                           PARALLELS, PHASES, RUNS_FOLDER, WEIGHTS)

_CPU, _GPU = DEFAULT_KNOBS["cpu"], DEFAULT_KNOBS["cuda"]

# Options that shape the sweep: --resume reruns the run's own configuration, and the default suite (no --model)
# has its own sweep but for --dtype, --device, --threads, --out and --no-isolate; given anyway, they are refused.
_SWEEP = ("phase", "batch_size", "seq_len", "new_tokens", "layers", "attn", "weights", "compile_", "static_cache",
          "activation_checkpointing", "min_iters", "min_time", "max_time", "warmup_iters", "rounds", "precision",
          "timeout_s", "name", "parallel", "no_baseline")
_RESUME_TOO = ("models", "dtype", "device", "threads", "out_dir", "no_isolate", "no_memory_check")


@click.command("bench")
@click.option("--model", "models", multiple=True,
              help="Preset, config.json or local model folder; repeat or comma-separate. Omit for the default suite.")
@click.option("--phase", default=",".join(PHASES), show_default=True,
              help=f"Comma-separated phases, of {', '.join(BENCH_PHASES)}; {GENERATE}: whole batched requests "
                   "(prompt prefill + greedy decode), timed for TTFT and TPOT.")
@click.option("--batch-size", default="1", show_default=True, help="Comma-separated batch sizes.")
@click.option("--seq-len", default="128", show_default=True, help="Comma-separated prompt/sequence lengths.")
@click.option("--dtype", default=None, type=click.Choice(BENCH_DTYPES),
              help="Compute dtype [default: bf16 on CUDA, fp32 on CPU].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help=f"Folder whose {RUNS_FOLDER}/ receives one sub-folder per run.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False),
              help="Run folder of an interrupted run: rerun only what did not finish (its own config is used).")
@click.option("--name", default=None, help="Name of the model in records and tables (one --model) [default: a preset's "
                                           "name, a config's _name_or_path, or its folder's name].")
@click.option("--new-tokens", default=16, show_default=True, type=int,
              help=f"Decode steps timed per pass; {GENERATE}: output tokens per sequence (>= 2).")
@click.option("--layers", type=int, default=None, help="Build only the first K layers at full width; extrapolate.")
@click.option("--attn", default="sdpa", show_default=True, type=click.Choice(ATTN_IMPLEMENTATIONS))
@click.option("--weights", default="random", show_default=True, type=click.Choice(WEIGHTS),
              help="local: read real weights from the --model folder (never from the Hub).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (recorded).")
@click.option("--static-cache", is_flag=True, help="Decode with a StaticCache (CUDA graphs with --compile on CUDA).")
@click.option("--activation-checkpointing", is_flag=True, help="Recompute activations in training (HFU changes, MFU not).")
@click.option("--rounds", type=int, default=None,
              help=f"Independent rounds per configuration, interleaved across the sweep [default: CPU {_CPU.rounds}, "
                   f"CUDA {_GPU.rounds}].")
@click.option("--precision", default=None, metavar="PCT",
              help=f"Stop a round when its median is known to +-PCT (95 % interval; 0: at the minimums) [default: "
                   f"CPU {_CPU.target_rel_ci:.0%}, CUDA {_GPU.target_rel_ci:.0%}].")
@click.option("--min-iters", type=int, default=None,
              help=f"Minimum timed calls per round [default: CPU {_CPU.min_iters}, CUDA {_GPU.min_iters}].")
@click.option("--min-time", type=float, default=None,
              help=f"Minimum summed timed seconds per round [default: CPU {_CPU.min_time_s:g}, CUDA {_GPU.min_time_s:g}].")
@click.option("--max-time", type=float, default=None,
              help=f"Cap on one round's timed window, seconds, raised to fit {CAP_STEPS} x --min-iters steps [default: "
                   f"CPU {_CPU.max_time_s:g}, CUDA {_GPU.max_time_s:g}].")
@click.option("--warmup", "warmup_iters", type=int, default=None,
              help=f"Warm-up calls after the cold one [default: CPU {_CPU.warmup_iters}, CUDA {_GPU.warmup_iters}].")
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_TIMEOUT_S, show_default=True,
              help="Seconds one configuration may take (model build included) before it is killed.")
@click.option("--threads", type=int, default=None,
              help=f"CPU threads for torch [default: {DEFAULT_CPU_THREADS}, steadier on a shared host; recorded].")
@click.option("--no-isolate", is_flag=True, help="Run in this process (no timeout, no crash isolation; debugging).")
@click.option("--no-memory-check", is_flag=True,
              help="Run configurations the memory model predicts not to fit (default: record them as skipped).")
@click.option("--parallel", default="none", show_default=True, type=click.Choice(PARALLELS),
              help="Spread each configuration over torchrun's ranks: " + "; ".join(
                  f"{p}: {', '.join(ph)}" for p, ph in PARALLEL_PHASES.items()) + " (batch per rank for ddp/fsdp).")
@click.option("--nproc", type=int, default=None, metavar="N",
              help="Start torchrun with N ranks on this node (one per GPU) and run the bench in it.")
@click.option("--no-baseline", is_flag=True,
              help="With --parallel: skip the same configurations on one device (the scaling efficiency's reference).")
@click.option("--dry-run", is_flag=True, help="Print the plan (predicted memory, fit, time) and run nothing; no GPU needed.")
@click.option("--hardware", default=None, metavar="ID",
              help="--dry-run: plan for this hardware-sheet GPU (llmecon hardware lists them) [default: this machine].")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="--dry-run: predict step times from this calibration [default: the datasheet roofline].")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows (with --dry-run: the plan) as JSON.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def bench(models, phase, batch_size, seq_len, dtype, device, out_dir, resume, name, new_tokens, layers, attn, weights,
          compile_, static_cache, activation_checkpointing, rounds, precision, min_iters, min_time, max_time,
          warmup_iters, timeout_s, threads, no_isolate, no_memory_check, parallel, nproc, no_baseline, dry_run,
          hardware, calibration, as_json, quiet) -> None:
    """Benchmark prefill, decode and training of real models on this machine.

    With --phase generate, also whole batched requests: time to first token and time per output token.

    Each configuration (model x phase x batch x seq-len) is measured in independent rounds,
    interleaved across the sweep; each round warms up, syncs the device and samples until its
    median is precise enough (a minimum count and time, a cap). The estimate is the median over
    rounds of
    each round's mean step time, its noise their spread. OOM, errors and timeouts are recorded as statuses.
    Every record lands in OUT/runs/<run-id>/ as it finishes; Ctrl-C keeps them. A configuration the memory
    model predicts not to fit is recorded as skipped, with the predicted and usable memory, before any runs;
    --dry-run prints that prediction for every configuration and runs nothing (docs/memory.md).

    \b
    Examples:
      llmecon bench --model tiny                         seconds, on a CPU
      llmecon bench                                      the default suite for this device
      llmecon bench --model llama-3-8b --phase prefill,decode,train \\
                    --batch-size 1,8,32 --seq-len 512,2048 --dtype bf16
      llmecon bench --model llama-3-70b --layers 4 --phase prefill   big models: 4 layers, extrapolated
      llmecon bench --resume llmecon-out/runs/20260101T000000Z-1a2b3c4d    finish an interrupted run
      llmecon bench --dry-run --hardware h200            the default CUDA suite's plan on an H200
      llmecon bench --model llama-3.2-1b --phase train --batch-size 4 --parallel ddp --nproc 8
                                                         data parallel on this node's 8 GPUs (torchrun)
      torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
               -m llmecon bench --model llama-3-8b --phase train --parallel fsdp     two nodes
    """
    names = [m.strip() for arg in models for m in arg.split(",") if m.strip()]
    ignored = _given(_SWEEP + (_RESUME_TOO if resume else ())) if resume or not names else []
    if ignored:
        why = "--resume reruns the run's own configuration" if resume else "without --model the default suite has its own sweep"
        raise UserError(f"{', '.join(ignored)}: not used, {why}; drop {'it' if len(ignored) == 1 else 'them'}")
    if dry_run and resume:
        raise UserError("--dry-run plans a new sweep; --resume continues a run: drop one of them")
    if dry_run and (parallel != "none" or nproc is not None):
        raise UserError("--dry-run plans one device: drop --parallel and --nproc")
    if not dry_run and (hardware is not None or calibration is not None):
        raise UserError(f"{'--hardware' if hardware is not None else '--calibration'} is for planning: add --dry-run")
    sweep = dict(phases=phase, batch_sizes=batch_size, seq_lens=seq_len, dtype=dtype, device=device,
                 new_tokens=new_tokens, layers=layers, attn=attn, weights=weights, compile=compile_,
                 static_cache=static_cache, activation_checkpointing=activation_checkpointing, min_iters=min_iters,
                 min_time_s=min_time, max_time_s=max_time, warmup_iters=warmup_iters, rounds=rounds,
                 precision=precision, timeout_s=timeout_s, threads=threads, isolate=not no_isolate, name=name,
                 memory_check=not no_memory_check, parallel=parallel, baseline=not no_baseline)
    if dry_run:
        plan = bench_plan(names or None, hardware=hardware, calibration=calibration, **sweep)
        echo_json(plan) if as_json else print_plan(plan)
        return
    started: dict = {}

    def announce(run_dir: Path) -> None:
        started["run_dir"] = run_dir
        if not quiet:
            click.echo(f"llmecon: run folder {run_dir}", err=True)

    try:
        res = run_sweep(names or None, out=out_dir, resume=resume, progress=not quiet, on_run_dir=announce, nproc=nproc,
                        **sweep)
    except KeyboardInterrupt:
        if started.get("run_dir") is not None:
            click.echo(f"llmecon: interrupted; finished records are kept in {started['run_dir']}; "
                       f"finish with: llmecon bench --resume {started['run_dir']}"
                       + (f" --nproc {nproc}" if nproc else ""), err=True)
        raise
    if res is None:  # a torchrun rank other than 0: rank 0 prints the results
        return
    for problem in res.problems:
        warn(problem)
    run_dir = res.paths[0]
    if as_json:
        echo_json({"run_dir": str(run_dir), "rows": frame_records(res.frame), "problems": res.problems})
        return
    print_measurements(res.frame, f"llmecon bench: {run_dir.name}", run_dir)


def _gib_parts(parts: dict) -> list:
    """The plan table's memory cells: weights (with autocast's copies), gradients, optimizer, KV, activations,
    logits; — for a part the configuration does not have."""
    cells = [parts["weights"] + parts["autocast_copies"], parts["gradients"], parts["optimizer"], parts["kv_cache"],
             parts["activations"], parts["logits"]]
    return [binary_bytes(v) if v else "—" for v in cells]


def print_plan(plan: dict) -> None:
    """The dry run's table: one row per configuration, predicted memory by part, fit, time and its source."""
    target = plan["target"]
    sources: list[str] = []
    rows = []
    for r in plan["rows"]:
        if r["time_source"] and r["time_source"] not in sources:
            sources.append(r["time_source"])
        fits = {True: "yes", None: "—"}.get(r["fits"], "no: skipped" if r["action"] == "skip" else "no: runs anyway")
        rows.append([r["name"], r["phase"], r["batch_size"], r["seq_len"], *_gib_parts(r["memory"]["parts_bytes"]),
                     binary_bytes(r["memory"]["total_bytes"]), fits, si(r["step_time_s"], "s"),
                     si(r["tokens_per_s"], "tok/s"), r["time_basis"] or "—"])
    memory = (f"{binary_bytes(target['memory_bytes'])} ({target['memory_source']}), "
              f"{binary_bytes(target['usable_bytes'])} usable with {target['headroom_fraction']:.0%} headroom"
              if target["memory_bytes"] else "memory unknown: no fit verdict")
    caption = "\n".join([f"target: {target['name']} on {target['device']}: {memory}",
                         f"memory: the predicted peak ({plan['formulas']}); training weights include autocast's "
                         "low-precision copies; total is the peak, not the parts' sum",
                         *[f"time: {s}" for s in sources]] + [f"note: {n}" for n in dict.fromkeys(
                             r["time_note"] for r in plan["rows"] if r["time_note"])])
    columns = ["model", "phase", "batch", "seq", "weights", "grads", "optimizer", "KV cache", "activations",
               "logits", "total", "fits", "step", "tokens/s", "time from"]
    show(table("llmecon bench --dry-run", columns, rows, caption=caption), rows)


def _given(names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` that the user typed (not click defaults), as their flags."""
    ctx = click.get_current_context()
    return [max(p.opts, key=len) for p in ctx.command.params
            if p.name in names and ctx.get_parameter_source(p.name) is not click.core.ParameterSource.DEFAULT]


COMMAND = bench
