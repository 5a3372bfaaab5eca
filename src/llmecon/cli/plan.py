"""`llmecon plan serve`: how many requests one accelerator can serve within latency targets, and the cost
(estimate.serving computes; this prints, and with --plot draws cost against TPOT)."""

from __future__ import annotations

import click

from llmecon.cli._output import console, echo_json, frame_records, table
from llmecon.estimate.generate_check import check_runs
from llmecon.estimate.serving import plan_serve
from llmecon.render.figures import serving_plan
from llmecon.units import binary_bytes, number, pct, si, usd
from llmecon.vocab import DTYPES


@click.group("plan")
def plan() -> None:
    """Plan a deployment: the cheapest configuration that meets your targets."""


@plan.command("serve")
@click.option("--model", required=True, metavar="M", help="Preset name, config.json, or a local HF model folder.")
@click.option("--hardware", metavar="H", help="Accelerator id (`llmecon hardware`) [default with --calibration: the "
                                              "calibrated one].")
@click.option("--calibration", type=click.Path(dir_okay=False), metavar="FILE",
              help="A calibration with prefill and decode fits (`llmecon calibrate`) [default: the published "
                   "reference for --hardware, `llmecon calibrations`].")
@click.option("--engine", metavar="E", help="Without --calibration: whose published points to use.")
@click.option("--transfer", is_flag=True, help="Apply --calibration to another accelerator than the one measured.")
@click.option("--dtype", type=click.Choice(DTYPES), default=None, help="dtype [default: the calibration's].")
@click.option("--prompt-tokens", metavar="P", help="Prompt tokens per request.")
@click.option("--output-tokens", metavar="O", help="Output tokens per request (>= 2).")
@click.option("--lengths", type=click.Path(dir_okay=False), metavar="FILE",
              help="Instead of -P/-O: a CSV of prompt_tokens,output_tokens[,count], one request (or group) a row.")
@click.option("--ttft-slo", metavar="T", help="Time-to-first-token target, e.g. 1s or 500ms (held by the p90).")
@click.option("--tpot-slo", metavar="T", help="Time-per-output-token target, e.g. 50ms.")
@click.option("--price", metavar="ID", help="Price id (`llmecon prices`).")
@click.option("--usd-per-hour", metavar="X", help="Price per accelerator-hour, in USD.")
@click.option("--tensor-parallel", default="1", show_default=True, metavar="T",
              help="Accelerators per replica, splitting each layer (tensor parallelism within a node).")
@click.option("--busbw", metavar="GB/S", help="With --tensor-parallel: a measured all-reduce bus bandwidth instead of "
                                              "the sheet's NVLink.")
@click.option("--num-accelerators", default=None, metavar="K",
              help="Accelerators in all, K / T independent replicas: scales requests/s, not the cost per request "
                   "[default: T].")
@click.option("--concurrency", metavar="LIST", help="Only these concurrencies, e.g. 1,8,32 [default: a scan to the "
                                                    "memory limit].")
@click.option("--max-concurrency", metavar="N", help="End the scan here (a server's max_num_seqs, say).")
@click.option("--memory", metavar="BYTES", help="Accelerator memory, e.g. 80G [default: the hardware sheet's].")
@click.option("--plot", type=click.Path(dir_okay=False), metavar="PNG",
              help="Also draw $ per 1M output tokens against TPOT, with the TPOT target.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (seconds, bytes, USD).")
def serve(as_json: bool, plot: str | None, **options) -> None:
    """Concurrency, latency and cost of serving MODEL on one accelerator.

    For each concurrency C (requests in flight): predicted TTFT and TPOT, output tokens/s, requests/s, the KV
    cache and whether it fits beside the weights, and $ per 1M input tokens, per 1M output tokens and per
    request. The plan is the cheapest C that meets the targets; the constraint that stops it is named. Step
    times come from --calibration or from the published reference (docs/serving.md: the model and its
    limits).

    \b
    Examples:
      llmecon plan serve --model llama-3-8b --calibration calibration.json --hardware h100-sxm --transfer \\
          --prompt-tokens 512 --output-tokens 128 --tpot-slo 50ms --ttft-slo 1s --usd-per-hour 3
      llmecon plan serve --model tiny --calibration calibration.json --lengths requests.csv --tpot-slo 5ms \\
          --usd-per-hour 0.1 --memory 8G --json
    """
    out = plan_serve(**{k: v for k, v in options.items() if v is not None and v is not False})
    if plot:
        serving_plan(out).savefig(plot, dpi=120, bbox_inches="tight")
    if as_json:
        echo_json(out)
        return
    _print(out)
    if plot:
        click.echo(f"wrote {plot}")


@plan.command("check")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--calibration", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A calibration with prefill and decode fits (`llmecon calibrate`).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: every checked row, and the summary.")
def check(runs, calibration: str, as_json: bool) -> None:
    """Predict measured generate runs from the calibration's prefill and decode fits: is the plan right?

    RUNS hold `llmecon bench --phase generate` runs (a batch prefilled, then decoded); the calibration is
    fitted on prefill and decode runs, never on generate ones, so each row is held out. Prints measured
    against predicted TTFT, TPOT and request time, and the median error of each (docs/serving.md).

    \b
    Example:
      llmecon bench --model tiny --phase prefill,decode --batch-size 1,2,4,8 --seq-len 64,256 -o fit/
      llmecon calibrate fit/ -o calibration.json
      llmecon bench --model tiny --phase generate --batch-size 1,3,6 --seq-len 96 -o check/
      llmecon plan check check/ --calibration calibration.json
    """
    checked, totals = check_runs(runs, calibration)
    if as_json:
        echo_json({"rows": frame_records(checked), "summary": totals})
        return
    con = console()
    con.print(table("generate runs: measured against predicted (held out of the fit)",
                    ["model", "batch", "prompt", "output", "TTFT", "predicted", "error", "TPOT", "predicted", "error",
                     "request", "predicted", "error"],
                    [[r.model, r.batch_size, r.prompt_tokens, r.output_tokens,
                      *(x for q in ("ttft", "tpot", "request") for x in
                        (si(getattr(r, f"{q}_s"), "s"), si(getattr(r, f"{q}_predicted_s"), "s"),
                         pct(getattr(r, f"{q}_rel_error"))))] for r in checked.itertuples()]))
    con.print("median error: " + ", ".join(f"{q.upper() if q != 'request' else q} {pct(v['median_rel_error'])} "
                                           f"(max {pct(v['max_rel_error'])})" for q, v in totals.items())
              + f" over {len(checked)} configuration(s)")


def _print(out: dict) -> None:
    con = console()
    lengths, slo = out["lengths"], out["slo"]
    tp = out["tensor_parallel"]
    inputs = [("model", f"{out['model']} on {out['hardware_id']} ({out['dtype']}), {out['num_accelerators']} "
                        "accelerator(s)" + (f", tensor parallel over {tp['degree']} per replica" if tp else "")),
              ("requests", f"{lengths['source']}: {lengths['requests']:,} request(s), mean prompt "
                           f"{number(lengths['mean_prompt_tokens'])}, mean output {number(lengths['mean_output_tokens'])}"),
              ("targets", f"TTFT {si(slo['ttft_s'], 's') if slo['ttft_s'] else '—'} (p90), "
                          f"TPOT {si(slo['tpot_s'], 's') if slo['tpot_s'] else '—'}"),
              ("prefill", f"{out['prefill']['label']}: {si(out['prefill']['mean_s'], 's')} per request"),
              ("decode", out["decode"]["label"]),
              ("memory", f"{binary_bytes(out['usable_bytes'])} usable: weights {binary_bytes(out['weight_bytes'])}, "
                         f"KV {binary_bytes(out['kv_cache_bytes_per_token'])}/token; at most "
                         f"{out['max_concurrency']:,} requests ({out['max_concurrency_by']})"
               if out["usable_bytes"] is not None else "unknown (--memory)"),
              ("price", f"{usd(out['usd_per_accelerator_hour'])}/accelerator-hour ({out['price']['source']})")]
    sources = sorted(set(out["prefill"]["sources"]) | set(out["decode"]["sources"]))
    inputs += [(f"source {i}", s) for i, s in enumerate(sources, 1)]
    con.print(table("plan serve: inputs", ["input", "value"], inputs))
    ok = {True: "✓", False: "✗", None: "?"}
    rows = [[("▶ " if r["plan"] else "") + f"{r['concurrency']:,}", si(r["ttft_p90_s"], "s"), si(r["tpot_s"], "s"),
             number(r["output_tokens_per_s"]), number(r["requests_per_s_total"]), binary_bytes(r["kv_cache_bytes"]),
             ok[r["fits"]], usd(r["usd_per_1m_input_tokens"]), usd(r["usd_per_1m_output_tokens"]),
             usd(r["usd_per_request"]), r["decode_regime"],
             "".join(ok[r["meets"][k]] for k in ("ttft", "tpot"))] for r in out["rows"]]
    con.print(table("plan serve: per concurrency (▶ = the plan)",
                    ["C", "TTFT p90", "TPOT", "out tok/s/accel", "req/s", "KV cache", "fits", "$/1M in", "$/1M out",
                     "$/request", "decode", "TTFT/TPOT ok"], rows))
    best = out["plan"]
    if best is not None:
        con.print(f"[bold]plan:[/bold] {best['concurrency']:,} requests in flight per "
                  f"{'replica' if tp else 'accelerator'}: TTFT p90 "
                  f"{si(best['ttft_p90_s'], 's')}, TPOT {si(best['tpot_s'], 's')}, "
                  f"{usd(best['usd_per_1m_output_tokens'])} per 1M output tokens; bound by {out['binding']}.")
    for note in out["notes"]:
        con.print(f"[dim]{note}[/dim]")


COMMAND = plan
