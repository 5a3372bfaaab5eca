"""Build decoder-only models for benchmarking: from a config, random weights, on the target device.

The model is built directly on the device and in the dtype it will run in (`with torch.device(dev)`
plus `dtype=` in `from_config`), so an 8B model never takes a slow detour through CPU memory.
Real weights are read only when asked, and only from a local folder (`local_files_only=True`);
`trust_remote_code` is always off, so a config that needs code from the Hub is refused.

`layers=k` builds the first k decoder layers at full width (every per-layer list in the config,
such as `layer_types`, is cut to k as well). Embeddings and the LM head are built (and run) once
either way, so the measured time is not extrapolated by `layer_scale = full / k`: the record holds
the cost model's work for the full model and a `time_scale`, the full / built ratio of the work that
dominates the phase (see measure.record.time_scale). `layer_scale` is kept for information.

The attention implementation is always chosen explicitly (sdpa unless eager is asked for) and
recorded, because transformers' own default differs between versions and devices.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.vocab import ATTN_IMPLEMENTATIONS, WEIGHTS

# the torch dtype each of vocab.BENCH_DTYPES computes in (tf32: float32 with TF32 matmuls allowed)
TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def torch_dtype(dtype: str):
    """The torch dtype a run's dtype string computes in (tf32 is float32 with TF32 matmuls allowed)."""
    import torch

    if dtype not in TORCH_DTYPES:
        raise UserError(f"dtype {dtype!r} cannot be benchmarked; choose one of {', '.join(TORCH_DTYPES)}")
    return getattr(torch, TORCH_DTYPES[dtype])


@dataclass
class BuiltModel:
    """A model ready to run, plus what the record must say about how it was built."""

    model: Any                    # transformers PreTrainedModel (CausalLM)
    shape: ModelShape             # the model AS BUILT (k layers when layers=k)
    full_shape: ModelShape        # the whole model as configured
    layers_built: int
    layer_scale: float            # full layers / built layers (information; time uses time_scale)
    attn_implementation: str
    cache_kwarg: str              # "cache" (transformers >= 5.2x) or "past_key_values"
    weights: str                  # "random" or "local"
    module: Any = None            # what a training step calls when the model is wrapped (DDP's wrapper); None: model


def built_shape(model, layers: int | None) -> tuple[ModelShape, ModelShape]:
    """(shape as built, full shape): the cost model's view of what will run (``layers`` of the full
    model's decoder layers, or all of them)."""
    full = load_model_shape(model)
    return (full if layers is None else full.with_layers(layers)), full


def _hf_config(cfg: dict, attn_implementation: str):
    from transformers import AutoConfig

    cfg = dict(cfg)
    model_type = cfg.pop("model_type", None)
    if not model_type:
        raise UserError("the model config has no model_type")
    if cfg.get("auto_map"):
        raise UserError(f"the {model_type!r} config asks for remote code (auto_map); llmecon never runs remote code")
    for key in ("architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        cfg.pop(key, None)
    try:
        config = AutoConfig.for_model(model_type, **cfg)
    except (ValueError, KeyError) as exc:
        raise UserError(f"transformers cannot build model_type {model_type!r}: {exc}") from None
    config._attn_implementation = attn_implementation
    return config


def build_model(
    spec,
    *,
    device: str,
    dtype: str,
    layers: int | None = None,
    attn_implementation: str = "sdpa",
    weights: str = "random",
    seed: int = 0,
    train: bool = False,
) -> BuiltModel:
    """Build the model for `spec` (preset, config.json, local folder or dict) on `device`.

    Random weights in `dtype` (fp32 master weights when `train`, the caller autocasts). With
    `weights="local"`, spec must be a local folder and its weights are loaded from disk only.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise UserError(f"attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, got {attn_implementation!r}")
    if weights not in WEIGHTS:
        raise UserError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    shape, full = built_shape(spec, layers)
    run_dtype = torch.float32 if train else torch_dtype(dtype)
    torch.manual_seed(seed)
    config = _hf_config(dict(shape.hf_config), attn_implementation)
    with torch.device(device):
        if weights == "local":
            if not (isinstance(spec, (str, os.PathLike)) and os.path.isdir(spec)):
                raise UserError("real weights are read only from a local model folder; pass its path as --model")
            model = AutoModelForCausalLM.from_pretrained(
                spec, config=config, dtype=run_dtype, local_files_only=True, trust_remote_code=False,
                attn_implementation=attn_implementation,
            )
        else:
            model = AutoModelForCausalLM.from_config(
                config, dtype=run_dtype, trust_remote_code=False, attn_implementation=attn_implementation
            )
    model.to(device)  # no-op when built in place; moves buffers some models create on CPU
    model.train(train)
    if not train:
        model.requires_grad_(False)
    params = inspect.signature(model.forward).parameters
    cache_kwarg = "cache" if "cache" in params else "past_key_values"
    built_layers = shape.num_hidden_layers
    return BuiltModel(
        model=model,
        shape=shape,
        full_shape=full,
        layers_built=built_layers,
        layer_scale=full.num_hidden_layers / built_layers,
        attn_implementation=attn_implementation,
        cache_kwarg=cache_kwarg,
        weights=weights,
    )


def enable_activation_checkpointing(model) -> None:
    """Recompute activations in the backward pass (the method was renamed in transformers 5.2x)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
