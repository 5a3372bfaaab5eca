"""`llmecon bench`: measure real models on this machine's accelerator (or CPU) and keep every number."""

from __future__ import annotations

import click

from llmecon.cli._common import console, echo_json, table
from llmecon.errors import UserError

_DEFAULT_TIMING = {"cpu": (5, 0.3, 10.0), "cuda": (10, 1.0, 30.0)}  # min_iters, min_time_s, max_time_s


@click.command("bench")
@click.option("--model", "models", multiple=True,
              help="Preset, config.json or local model folder; repeat or comma-separate. Omit for the default suite.")
@click.option("--phase", default="prefill,decode,train", show_default=True, help="Comma-separated phases.")
@click.option("--batch-size", default="1", show_default=True, help="Comma-separated batch sizes.")
@click.option("--seq-len", default="128", show_default=True, help="Comma-separated prompt/sequence lengths.")
@click.option("--dtype", default=None, type=click.Choice(["fp32", "tf32", "bf16", "fp16"]),
              help="Compute dtype [default: bf16 on CUDA, fp32 on CPU].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives one sub-folder per run.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False),
              help="Run folder of an interrupted run: rerun only what did not finish (its own config is used).")
@click.option("--new-tokens", default=16, show_default=True, type=int, help="Decode steps timed per pass.")
@click.option("--layers", type=int, default=None, help="Build only the first K layers at full width; extrapolate.")
@click.option("--attn", "attn", default="sdpa", show_default=True, type=click.Choice(["sdpa", "eager"]))
@click.option("--weights", default="random", show_default=True, type=click.Choice(["random", "local"]),
              help="local: read real weights from the --model folder (never from the Hub).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (recorded).")
@click.option("--static-cache", is_flag=True, help="Decode with a StaticCache (CUDA graphs with --compile on CUDA).")
@click.option("--activation-checkpointing", is_flag=True, help="Recompute activations in training (HFU changes, MFU not).")
@click.option("--min-iters", type=int, default=None, help="Minimum timed calls per configuration [CPU 5, CUDA 10].")
@click.option("--min-time", type=float, default=None, help="Minimum summed timed seconds [CPU 0.3, CUDA 1].")
@click.option("--max-time", type=float, default=None, help="Cap on one timed window, seconds [CPU 10, CUDA 30].")
@click.option("--warmup", "warmup_iters", type=int, default=3, show_default=True, help="Warm-up calls after the cold one.")
@click.option("--timeout", "timeout_s", type=float, default=900.0, show_default=True,
              help="Seconds one configuration may take (model build included) before it is killed.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice; recorded).")
@click.option("--no-isolate", is_flag=True, help="Run in this process (no timeout, no crash isolation; debugging).")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def bench(models, phase, batch_size, seq_len, dtype, device, out_dir, resume, new_tokens, layers, attn, weights,
          compile_, static_cache, activation_checkpointing, min_iters, min_time, max_time, warmup_iters, timeout_s,
          threads, no_isolate, as_json, quiet) -> None:
    """Benchmark prefill, decode and training of real models on this machine.

    Each configuration (model x phase x batch x seq-len) is timed with warm-up, device sync, a
    minimum count and time, and a validity verdict; OOM, errors and timeouts are recorded as
    statuses. Every record lands in OUT/<run-id>/ as it finishes; Ctrl-C keeps them.

    \b
    Examples:
      llmecon bench --model tiny                         seconds, on a CPU
      llmecon bench                                      the default suite for this device
      llmecon bench --model llama-3-8b --phase prefill,decode,train \\
                    --batch-size 1,8,32 --seq-len 512,2048 --dtype bf16
      llmecon bench --model llama-3-70b --layers 4 --phase prefill   big models: 4 layers, extrapolated
      llmecon bench --resume results/20260101T000000Z-1a2b3c4d    finish an interrupted run
    """
    from pathlib import Path

    from llmecon.bench.probe import device_kind, resolve_device
    from llmecon.bench.runner import BenchSpec, default_suite, parse_int_list, run_bench

    names = tuple(m.strip() for arg in models for m in arg.split(",") if m.strip())
    ignored = _given_sweep_options(include_model_and_device=bool(resume)) if resume or not names else []
    if ignored:
        why = ("--resume reruns the run's own configuration" if resume
               else "without --model the default suite has its own sweep")
        raise UserError(f"{', '.join(ignored)}: not used, {why}; drop {'it' if len(ignored) == 1 else 'them'}")
    if resume:
        spec = None
    else:
        resolved = resolve_device(device)  # no CUDA for --device cuda: exit 2 before any model is built
        kind = device_kind(resolved)
        it, mt, xt = _DEFAULT_TIMING[kind]
        if not names:
            import dataclasses

            spec = dataclasses.replace(default_suite(kind), device=device, isolate=not no_isolate, threads=threads,
                                       **({"dtype": dtype} if dtype else {}))
        else:
            spec = BenchSpec(
                models=names, phases=tuple(p.strip() for p in phase.split(",") if p.strip()),
                batch_sizes=parse_int_list(batch_size, "--batch-size"), seq_lens=parse_int_list(seq_len, "--seq-len"),
                dtype=dtype or ("bf16" if kind == "cuda" else "fp32"), device=device, new_tokens=new_tokens,
                attn_implementation=attn, layers=layers, compile=compile_, static_cache=static_cache,
                activation_checkpointing=activation_checkpointing,
                min_iters=min_iters if min_iters is not None else it,
                min_time_s=min_time if min_time is not None else mt,
                max_time_s=max_time if max_time is not None else xt,
                warmup_iters=warmup_iters, timeout_s=timeout_s, isolate=not no_isolate, weights=weights,
                threads=threads,
            )

    started: dict = {}

    def announce(run_dir: Path) -> None:
        started["run_dir"] = run_dir
        if not quiet:
            click.echo(f"llmecon: run folder {run_dir}", err=True)

    try:
        run_dir = run_bench(spec, out_dir, resume=Path(resume) if resume else None, progress=not quiet,
                            on_run_dir=announce)
    except KeyboardInterrupt:
        where = started.get("run_dir")
        if where is not None:
            click.echo(f"llmecon: interrupted; finished records are kept in {where}; "
                       f"finish with: llmecon bench --resume {where}", err=True)
        raise
    _report(run_dir, as_json)


# Options that shape the sweep: ignored by --resume (which reruns the run's own config in its own folder;
# --out and --no-isolate too) and, but for --dtype, --device, --threads, --out and --no-isolate, by the
# default suite (no --model). Given anyway, they are refused.
_SWEEP_OPTIONS = ("phase", "batch_size", "seq_len", "new_tokens", "layers", "attn", "weights", "compile_",
                  "static_cache", "activation_checkpointing", "min_iters", "min_time", "max_time", "warmup_iters",
                  "timeout_s")


def _given_sweep_options(*, include_model_and_device: bool) -> list[str]:
    """The sweep options the user typed (not click defaults), as their flags."""
    ctx = click.get_current_context()
    names = _SWEEP_OPTIONS + (("models", "dtype", "device", "threads", "out_dir", "no_isolate")
                              if include_model_and_device else ())
    given = []
    for param in ctx.command.params:
        if param.name in names and ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT:
            given.append(max(param.opts, key=len))
    return given


def _report(run_dir, as_json: bool) -> None:
    from llmecon.results import load_results
    from llmecon.units import si

    def pct(v):
        return f"{100 * v:.3g}%"

    frame, problems = load_results([run_dir])
    for p in problems:
        click.echo(f"llmecon: warning: {p}", err=True)
    if as_json:
        rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records") if len(frame) else []
        echo_json({"run_dir": str(run_dir), "rows": rows, "problems": problems})
        return
    frame = frame.sort_values(["model", "phase", "seq_len", "batch_size"]) if len(frame) else frame

    def num(v):
        return None if v is None or v != v else v

    def row_warnings(r) -> str:
        """The row's own warnings; dirty_build is the run's, said once in the caption."""
        return "; ".join(w for w in (r.get("warnings") or "").split("; ") if w and w != "dirty_build")

    dirty = any("dirty_build" in (r or "") for r in (frame["warnings"] if len(frame) else []))
    rows = []
    for r in frame.to_dict(orient="records"):
        mfu = num(r.get("mfu_executed"))
        mfu_c = num(r.get("mfu_executed_vs_ceiling"))
        bw = num(r.get("bandwidth_util"))
        bw_c = num(r.get("bandwidth_util_vs_ceiling"))
        tps = num(r.get("tokens_per_s"))
        step = num(r.get("step_time_s"))
        rows.append([
            r["model"], r["phase"], r["batch_size"], r["seq_len"], r["status"],
            si(tps, "tok/s") if tps else None, si(step, "s") if step else None,
            pct(mfu) if mfu is not None else None, pct(mfu_c) if mfu_c is not None else None,
            pct(bw) if bw is not None else None, pct(bw_c) if bw_c is not None else None,
            # why a row failed, else what to be wary of (noisy, a busy host): never a bare "ok" then
            (r.get("reason") or (f"warning: {row_warnings(r)}" if row_warnings(r) else ""))[:60] or None,
        ])
    hw = frame["hardware_id"].dropna().unique().tolist() if len(frame) else []
    caption = ("MFU = executed FLOPs per second / dense datasheet peak "
               f"({hw[0] if hw else 'device not in the sheet: no datasheet MFU'}) or / the GEMM ceiling measured "
               "on this device; BW = decode bytes (weights + KV) per second / datasheet or measured copy bandwidth.\n"
               f"Run folder: {run_dir}   (llmecon results show {run_dir} for every column)"
               + ("\nwarning: llmecon ran from a git checkout with uncommitted changes (dirty_build)" if dirty else ""))
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 160)  # a log file or pipe: no need to squeeze into 80 columns
    out.print(table(f"llmecon bench: {run_dir.name}", [
        "model", "phase", "batch", "seq", "status", "tokens/s", "step", "MFU sheet", "MFU ceiling",
        "BW sheet", "BW ceiling", "reason / warnings"], rows, caption=caption))


COMMANDS = [bench]
