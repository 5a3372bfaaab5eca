"""`llmecon bench`: measure real models on this machine's accelerator (or CPU) and keep every number."""

from __future__ import annotations

from pathlib import Path

import click

from llmecon.api import bench as run_sweep
from llmecon.cli._output import echo_json, frame_records, show, table, warn
from llmecon.errors import UserError
from llmecon.measure.spec import DEFAULT_TIMEOUT_S
from llmecon.measure.timing import DEFAULT_KNOBS
from llmecon.units import pct, si
from llmecon.vocab import ATTN_IMPLEMENTATIONS, BENCH_DTYPES, DEFAULT_OUT, PHASES, RUNS_FOLDER, WEIGHTS

_CPU, _GPU = DEFAULT_KNOBS["cpu"], DEFAULT_KNOBS["cuda"]

# Options that shape the sweep: --resume reruns the run's own configuration, and the default suite (no --model)
# has its own sweep but for --dtype, --device, --threads, --out and --no-isolate; given anyway, they are refused.
_SWEEP = ("phase", "batch_size", "seq_len", "new_tokens", "layers", "attn", "weights", "compile_", "static_cache",
          "activation_checkpointing", "min_iters", "min_time", "max_time", "warmup_iters", "timeout_s", "name")
_RESUME_TOO = ("models", "dtype", "device", "threads", "out_dir", "no_isolate")


@click.command("bench")
@click.option("--model", "models", multiple=True,
              help="Preset, config.json or local model folder; repeat or comma-separate. Omit for the default suite.")
@click.option("--phase", default=",".join(PHASES), show_default=True, help="Comma-separated phases.")
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
@click.option("--new-tokens", default=16, show_default=True, type=int, help="Decode steps timed per pass.")
@click.option("--layers", type=int, default=None, help="Build only the first K layers at full width; extrapolate.")
@click.option("--attn", default="sdpa", show_default=True, type=click.Choice(ATTN_IMPLEMENTATIONS))
@click.option("--weights", default="random", show_default=True, type=click.Choice(WEIGHTS),
              help="local: read real weights from the --model folder (never from the Hub).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (recorded).")
@click.option("--static-cache", is_flag=True, help="Decode with a StaticCache (CUDA graphs with --compile on CUDA).")
@click.option("--activation-checkpointing", is_flag=True, help="Recompute activations in training (HFU changes, MFU not).")
@click.option("--min-iters", type=int, default=None,
              help=f"Minimum timed calls per configuration [default: CPU {_CPU.min_iters}, CUDA {_GPU.min_iters}].")
@click.option("--min-time", type=float, default=None,
              help=f"Minimum summed timed seconds [default: CPU {_CPU.min_time_s:g}, CUDA {_GPU.min_time_s:g}].")
@click.option("--max-time", type=float, default=None,
              help=f"Cap on one timed window, seconds [default: CPU {_CPU.max_time_s:g}, CUDA {_GPU.max_time_s:g}].")
@click.option("--warmup", "warmup_iters", type=int, default=None,
              help=f"Warm-up calls after the cold one [default: CPU {_CPU.warmup_iters}, CUDA {_GPU.warmup_iters}].")
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_TIMEOUT_S, show_default=True,
              help="Seconds one configuration may take (model build included) before it is killed.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice; recorded).")
@click.option("--no-isolate", is_flag=True, help="Run in this process (no timeout, no crash isolation; debugging).")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def bench(models, phase, batch_size, seq_len, dtype, device, out_dir, resume, name, new_tokens, layers, attn, weights,
          compile_, static_cache, activation_checkpointing, min_iters, min_time, max_time, warmup_iters, timeout_s,
          threads, no_isolate, as_json, quiet) -> None:
    """Benchmark prefill, decode and training of real models on this machine.

    Each configuration (model x phase x batch x seq-len) is timed with warm-up, device sync, a
    minimum count and time, and a validity verdict; OOM, errors and timeouts are recorded as
    statuses. Every record lands in OUT/runs/<run-id>/ as it finishes; Ctrl-C keeps them.

    \b
    Examples:
      llmecon bench --model tiny                         seconds, on a CPU
      llmecon bench                                      the default suite for this device
      llmecon bench --model llama-3-8b --phase prefill,decode,train \\
                    --batch-size 1,8,32 --seq-len 512,2048 --dtype bf16
      llmecon bench --model llama-3-70b --layers 4 --phase prefill   big models: 4 layers, extrapolated
      llmecon bench --resume llmecon-out/runs/20260101T000000Z-1a2b3c4d    finish an interrupted run
    """
    names = [m.strip() for arg in models for m in arg.split(",") if m.strip()]
    ignored = _given(_SWEEP + (_RESUME_TOO if resume else ())) if resume or not names else []
    if ignored:
        why = "--resume reruns the run's own configuration" if resume else "without --model the default suite has its own sweep"
        raise UserError(f"{', '.join(ignored)}: not used, {why}; drop {'it' if len(ignored) == 1 else 'them'}")
    started: dict = {}

    def announce(run_dir: Path) -> None:
        started["run_dir"] = run_dir
        if not quiet:
            click.echo(f"llmecon: run folder {run_dir}", err=True)

    try:
        res = run_sweep(names or None, phases=phase, batch_sizes=batch_size, seq_lens=seq_len, dtype=dtype,
                        device=device, out=out_dir, resume=resume, new_tokens=new_tokens, layers=layers, attn=attn,
                        weights=weights, compile=compile_, static_cache=static_cache,
                        activation_checkpointing=activation_checkpointing, min_iters=min_iters, min_time_s=min_time,
                        max_time_s=max_time, warmup_iters=warmup_iters, timeout_s=timeout_s, threads=threads,
                        isolate=not no_isolate, name=name, progress=not quiet, on_run_dir=announce)
    except KeyboardInterrupt:
        if started.get("run_dir") is not None:
            click.echo(f"llmecon: interrupted; finished records are kept in {started['run_dir']}; "
                       f"finish with: llmecon bench --resume {started['run_dir']}", err=True)
        raise
    for problem in res.problems:
        warn(problem)
    run_dir = res.paths[0]
    if as_json:
        echo_json({"run_dir": str(run_dir), "rows": frame_records(res.frame), "problems": res.problems})
        return
    _print(res.frame, run_dir)


def _given(names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` that the user typed (not click defaults), as their flags."""
    ctx = click.get_current_context()
    return [max(p.opts, key=len) for p in ctx.command.params
            if p.name in names and ctx.get_parameter_source(p.name) is not click.core.ParameterSource.DEFAULT]


def _print(frame, run_dir: Path) -> None:
    frame = frame.sort_values(["model", "phase", "seq_len", "batch_size"]) if len(frame) else frame
    rows = []
    for r in frame_records(frame):
        warnings = "; ".join(w for w in (r["warnings"] or "").split("; ") if w and w != "dirty_build")
        rows.append([r["model"], r["phase"], r["batch_size"], r["seq_len"], r["status"], si(r["tokens_per_s"], "tok/s"),
                     si(r["step_time_s"], "s"), pct(r["mfu_executed"]), pct(r["mfu_executed_vs_ceiling"]),
                     pct(r["bandwidth_util"]), pct(r["bandwidth_util_vs_ceiling"]),
                     # why a row failed, else what to be wary of (noisy, a busy host): never a bare "ok" then
                     (r["reason"] or (f"warning: {warnings}" if warnings else ""))[:60] or None])
    hw = [h for h in dict.fromkeys(frame["hardware_id"]) if h] if len(frame) else []
    dirty = len(frame) and frame["warnings"].fillna("").str.contains("dirty_build").any()
    caption = ("MFU = executed FLOPs per second / dense datasheet peak "
               f"({hw[0] if hw else 'device not in the sheet: no datasheet MFU'}) or / the GEMM ceiling measured on "
               "this device; BW = decode bytes (weights + KV) per second / datasheet or measured copy bandwidth.\n"
               f"Run folder: {run_dir}   (llmecon results show {run_dir} for every column)"
               + ("\nwarning: llmecon ran from a git checkout with uncommitted changes (dirty_build)" if dirty else ""))
    show(table(f"llmecon bench: {run_dir.name}", ["model", "phase", "batch", "seq", "status", "tokens/s", "step",
                                                  "MFU sheet", "MFU ceiling", "BW sheet", "BW ceiling",
                                                  "reason / warnings"], rows, caption=caption))


COMMAND = bench
