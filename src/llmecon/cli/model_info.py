"""`llmecon model-info`: parameters, FLOPs and bytes of one model, or the list of presets."""

from __future__ import annotations

import click

from llmecon.cli._output import console, echo_json, table
from llmecon.costmodel.info import DEFAULT_DTYPE, DEFAULT_SEQ_LEN, list_models, model_info
from llmecon.errors import UserError
from llmecon.units import binary_bytes, si
from llmecon.vocab import DTYPES


def _print_info(info: dict) -> None:
    con = console()
    moe = f", {info['num_experts']} experts, {info['num_experts_per_tok']} per token" if info["num_experts"] > 1 else ""
    shape_rows = [
        ("model_type", info["model_type"]),
        ("layers × hidden", f"{info['num_hidden_layers']} × {info['hidden_size']}"),
        ("heads (query / KV) × head_dim",
         f"{info['num_attention_heads']} / {info['num_key_value_heads']} × {info['head_dim']}"),
        ("intermediate_size", f"{info['intermediate_size']}{moe}"),
        ("vocab / max positions", f"{info['vocab_size']} / {info['max_position_embeddings']}"),
        ("tied embeddings", str(info["tie_word_embeddings"]).lower()),
        ("params total", f"{info['params_total']:,} ({si(info['params_total'])})"),
        ("params non-embedding", f"{info['params_non_embedding']:,} ({si(info['params_non_embedding'])})"),
        ("params active per token", f"{info['params_active']:,} ({si(info['params_active'])})"),
        ("training tokens", si(info["training_tokens"])),
    ]
    con.print(table(f"{info['name']}", ["", "value"], shape_rows, caption=info["note"] or None))
    L = info["seq_len"]
    flop_rows = [(conv, si(info["forward_flops"][conv], "FLOP"), si(info["forward_flops"][conv] / L, "FLOP"),
                  si(info["decode_step_flops"][conv], "FLOP"), si(info["train_step_flops"][conv], "FLOP"))
                 for conv in info["forward_flops"]]
    caption = "prefill: logits on the last position; train: forward + backward, loss on all positions"
    if L > info["max_position_embeddings"]:
        caption += (f"\nnote: seq_len {L:,} exceeds the model's max_position_embeddings "
                    f"{info['max_position_embeddings']:,}: arithmetic only, the model cannot run this shape")
    con.print(table(f"FLOPs at seq_len {L} (batch 1)",
                    ["convention", "prefill", "prefill / token", f"decode step @ {L}", "train step"], flop_rows,
                    caption=caption))
    b = info["bytes"]
    tm = b["training_memory"]
    byte_rows = [(f"weights {dt}", binary_bytes(v)) for dt, v in b["weights"].items() if dt in ("fp32", "bf16", "fp8")]
    byte_rows += [
        (f"KV cache per token ({info['dtype']})", binary_bytes(b["kv_cache_per_token"])),
        (f"KV cache at {L} tokens", binary_bytes(b["kv_cache_at_seq_len"])),
        (f"decode step reads @ {L}, batch 1", binary_bytes(b["decode_step"])),
        (f"training state ({tm['bytes_per_param']:g} B/param)", binary_bytes(tm["total_bytes"])),
    ]
    byte_rows += [(f"  {k} ({v:g} B/param)", binary_bytes(tm["breakdown_bytes"][k]))
                  for k, v in tm["breakdown_bytes_per_param"].items()]
    con.print(table("Bytes", ["", "bytes"], byte_rows))


@click.command("model-info")
@click.argument("model", required=False)
@click.option("--seq-len", type=int, default=DEFAULT_SEQ_LEN, show_default=True, help="Tokens in the sequence.")
@click.option("--dtype", type=click.Choice(DTYPES), default=DEFAULT_DTYPE, show_default=True,
              help="dtype of the KV cache and the decode bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (raw FLOPs and bytes).")
@click.option("--list", "list_", is_flag=True, help="List the presets.")
def model_info_command(model: str | None, seq_len: int, dtype: str, as_json: bool, list_: bool) -> None:
    """Parameters, FLOPs (four conventions side by side) and bytes of MODEL.

    MODEL is a preset name, a config.json, or a local model folder holding one.

    \b
    Examples:
      llmecon model-info --list
      llmecon model-info llama-3-8b --seq-len 2048
      llmecon model-info ./my-model/config.json --dtype fp16 --json
    """
    if list_:
        rows = list_models()
        if as_json:
            echo_json(rows)
            return
        console().print(table("Model presets (costmodel/data/models.csv)",
                              ["name", "model_type", "params", "active", "training tokens"],
                              [(r["name"], r["model_type"], si(r["params_total"]), si(r["params_active"]),
                                si(r["training_tokens"])) for r in rows],
                              caption="llmecon model-info NAME for details; a config.json or model folder works too"))
        return
    if model is None:
        raise UserError("model-info needs a MODEL (a preset, a config.json or a model folder); --list shows the presets")
    info = model_info(model, seq_len, dtype)
    if as_json:
        echo_json(info)
    else:
        _print_info(info)


COMMAND = model_info_command
