"""What `llmecon model-info` shows: one model's shape, parameters, FLOPs under every convention and bytes,
or the list of presets."""

from __future__ import annotations

from llmecon.costmodel import flops, memory
from llmecon.costmodel.presets import list_presets, load_model_shape
from llmecon.errors import UserError, require_count
from llmecon.vocab import DTYPES

DEFAULT_SEQ_LEN = 2048
DEFAULT_DTYPE = "bf16"


def model_info(model, seq_len: int = DEFAULT_SEQ_LEN, dtype: str = DEFAULT_DTYPE) -> dict:
    """Parameters, FLOPs (four conventions side by side) and bytes of a model, as `llmecon model-info --json`.

    >>> info = model_info("llama-3-8b", seq_len=2048)
    >>> info["params_total"], round(info["forward_flops"]["article"] / 1e12, 1)
    (8030261248, 32.9)
    """
    seq_len = require_count("--seq-len", seq_len)
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r}; known: {', '.join(DTYPES)}")
    shape = load_model_shape(model)
    return {
        **shape.summary(),
        "seq_len": seq_len,
        "dtype": dtype,
        "forward_flops": flops.all_conventions(flops.prefill_flops, shape, 1, seq_len),
        "forward_flops_note": "one sequence of seq_len tokens, no cache, logits for the last position only",
        "decode_step_flops": flops.all_conventions(flops.decode_step_flops, shape, 1, seq_len),
        "decode_step_flops_note": "one new token attending seq_len positions (itself included), batch 1",
        "train_step_flops": flops.all_conventions(flops.train_step_flops, shape, 1, seq_len),
        "train_step_flops_note": "forward + backward over one sequence of seq_len tokens, loss on every position",
        "bytes": {
            "weights": {dt: memory.weight_bytes(shape, dt) for dt in DTYPES},
            "kv_cache_per_token": memory.kv_cache_bytes_per_token(shape, dtype),
            "kv_cache_at_seq_len": seq_len * memory.kv_cache_bytes_per_token(shape, dtype),
            "decode_step": memory.decode_step_bytes(shape, dtype, 1, seq_len),
            "training_memory": memory.training_memory_bytes(shape),
        },
    }


def list_models() -> list[dict]:
    """One summary per preset of the model sheet (costmodel/data/models.csv), as `llmecon model-info --list --json`.

    >>> next(m for m in list_models() if m["name"] == "llama-3-8b")["params_total"]
    8030261248
    """
    out = []
    for name in list_presets():
        s = load_model_shape(name)
        out.append({"name": name, "model_type": s.model_type, "params_total": s.params_total,
                    "params_active": s.params_active, "training_tokens": s.training_tokens, "source": s.source,
                    "note": s.note})
    return out
