"""`llmecon model-info`: parameters, FLOPs and bytes of one model, or the list of presets."""

from __future__ import annotations

import click

from llmecon.cli._common import console, echo_json, table
from llmecon.errors import UserError


def _info(spec: str, seq_len: int, dtype: str) -> dict:
    from llmecon.costmodel import flops, memory
    from llmecon.costmodel.architecture import load_model_shape

    if dtype not in memory.BYTES_PER_ELEMENT:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(memory.BYTES_PER_ELEMENT)}")
    shape = load_model_shape(spec)
    out = shape.summary()
    out.update({
        "seq_len": seq_len,
        "dtype": dtype,
        "forward_flops": flops.all_conventions(flops.prefill_flops, shape, 1, seq_len),
        "forward_flops_note": "one sequence of seq_len tokens, no cache, logits for the last position only",
        "decode_step_flops": flops.all_conventions(flops.decode_step_flops, shape, 1, seq_len),
        "decode_step_flops_note": "one new token attending seq_len positions (itself included), batch 1",
        "train_step_flops": flops.all_conventions(flops.train_step_flops, shape, 1, seq_len),
        "train_step_flops_note": "forward + backward over one sequence of seq_len tokens, loss on every position",
        "bytes": {
            "weights": {dt: memory.weight_bytes(shape, dt) for dt in memory.BYTES_PER_ELEMENT},
            "kv_cache_per_token": memory.kv_cache_bytes_per_token(shape, dtype),
            "kv_cache_at_seq_len": seq_len * memory.kv_cache_bytes_per_token(shape, dtype),
            "decode_step": memory.decode_step_bytes(shape, dtype, 1, seq_len),
            "training_memory": memory.training_memory_bytes(shape),
        },
    })
    return out


def _print_info(info: dict) -> None:
    from llmecon.units import binary_bytes, si

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
    con.print(table(f"{info['name']}", ["", "value"], shape_rows,
                    caption=info["note"] or None))
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


def _list(as_json: bool) -> None:
    from llmecon.costmodel.architecture import list_presets, load_model_shape
    from llmecon.units import si

    rows = []
    for name in list_presets():
        s = load_model_shape(name)
        rows.append({"name": name, "model_type": s.model_type, "params_total": s.params_total,
                     "params_active": s.params_active, "training_tokens": s.training_tokens,
                     "source": s.source, "note": s.note})
    if as_json:
        echo_json(rows)
        return
    console().print(table("Model presets (costmodel/data/models.csv)",
                          ["name", "model_type", "params", "active", "training tokens"],
                          [(r["name"], r["model_type"], si(r["params_total"]), si(r["params_active"]),
                            si(r["training_tokens"])) for r in rows],
                          caption="llmecon model-info NAME for details; a config.json or model folder works too"))


@click.command("model-info")
@click.argument("model", required=False)
@click.option("--seq-len", type=int, default=2048, show_default=True, help="Tokens in the sequence.")
@click.option("--dtype", default="bf16", show_default=True,
              help="dtype for KV-cache and decode bytes (fp32, tf32, bf16, fp16, fp8, int8).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (raw FLOPs and bytes).")
@click.option("--list", "list_", is_flag=True, help="List the presets.")
def model_info(model: str | None, seq_len: int, dtype: str, as_json: bool, list_: bool) -> None:
    """Parameters, FLOPs (four conventions side by side) and bytes of MODEL.

    MODEL is a preset name, a config.json, or a local model folder holding one.

    \b
    Examples:
      llmecon model-info --list
      llmecon model-info llama-3-8b --seq-len 2048
      llmecon model-info ./my-model/config.json --dtype fp16 --json
    """
    if list_:
        _list(as_json)
        return
    if model is None:
        raise UserError("model-info needs a MODEL (a preset, a config.json or a model folder); --list shows the presets")
    if seq_len <= 0:
        raise UserError(f"--seq-len must be > 0, got {seq_len}")
    info = _info(model, seq_len, dtype)
    if as_json:
        echo_json(info)
    else:
        _print_info(info)


COMMANDS = [model_info]
