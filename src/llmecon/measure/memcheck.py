"""Will a configuration fit in the device's memory? The memory model's verdict, before anything runs.

`config_footprint(cfg)` predicts the peak of one configuration of `spec.plan` (costmodel.footprint, for the
model as built: ``--layers K`` builds K layers). `oom_reason(total, memory)` words a configuration that would
not fit, naming both sizes. `memory_skips(spec, configs, memory_bytes)` is what bench's runner calls right
after probing the device: {config_id: reason} for every configuration predicted not to fit, which the runner
records as ``skipped`` instead of letting it end in an out-of-memory error (``BenchSpec.memory_check`` False,
``bench --no-memory-check``, turns it off). `local_device(device)` says what the dry run plans against when no
--hardware is named: this machine's CPU RAM or CUDA device.
"""

from __future__ import annotations

import os

from llmecon.costmodel.footprint import HEADROOM_FRACTION, footprint, usable_bytes
from llmecon.errors import UserError
from llmecon.measure.models import built_shape
from llmecon.measure.probe import device_kind, resolve_device
from llmecon.measure.spec import BenchSpec
from llmecon.records.environment import cpu_model
from llmecon.units import binary_bytes
from llmecon.vocab import GENERATE


def config_footprint(cfg: dict) -> dict:
    """costmodel.footprint of one planned configuration (a dict of `spec.plan`), for the model as built. A generate
    request holds what a decode pass does: the prompt's prefill, then new_tokens - 1 steps on a dynamic cache."""
    shape, _ = built_shape(cfg["model"], cfg.get("layers"))
    phase, new_tokens = cfg["phase"], cfg.get("new_tokens") or 0
    if phase == GENERATE:
        phase, new_tokens = "decode", new_tokens - 1
    return footprint(shape, phase, batch_size=cfg["batch_size"], seq_len=cfg["seq_len"], dtype=cfg["dtype"],
                     new_tokens=new_tokens, device_kind=device_kind(cfg["device"]),
                     attn_implementation=cfg.get("attn_implementation", "sdpa"),
                     static_cache=bool(cfg.get("static_cache")),
                     activation_checkpointing=bool(cfg.get("activation_checkpointing")))


def oom_reason(total_bytes: float, memory_bytes: float) -> str | None:
    """None when ``total_bytes`` fits in the usable part of ``memory_bytes``, else the skip reason."""
    usable = usable_bytes(memory_bytes)
    if total_bytes <= usable:
        return None
    return (f"predicted_oom: needs {binary_bytes(total_bytes, 4)} of {binary_bytes(usable, 4)} usable "
            f"({binary_bytes(memory_bytes, 4)} less {HEADROOM_FRACTION:.0%} headroom; --no-memory-check runs it anyway)")


def memory_skips(spec: BenchSpec, configs: list[dict], memory_bytes: float | None) -> dict[str, str]:
    """{config_id: reason} for the configurations predicted not to fit in ``memory_bytes`` (the probed
    device's); empty when the check is off or the device's memory is unknown."""
    if not spec.memory_check or not memory_bytes:
        return {}
    out = {}
    for cfg in configs:
        reason = oom_reason(config_footprint(cfg)["total_bytes"], memory_bytes)
        if reason is not None:
            out[cfg["config_id"]] = reason
    return out


def local_device(device: str) -> dict:
    """{"device": resolved, "kind", "name", "memory_bytes", "memory_source"} of this machine's device;
    UserError naming --hardware when CUDA is asked for and absent."""
    try:
        resolved = resolve_device(device)
    except UserError as exc:
        raise UserError(f"{exc}; to plan for a GPU that is not here, name it: --hardware ID "
                        "(llmecon hardware lists them)") from None
    if device_kind(resolved) == "cpu":
        try:
            memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            memory = None
        return {"device": resolved, "kind": "cpu", "name": cpu_model() or "unknown CPU", "memory_bytes": memory,
                "memory_source": "this machine's physical RAM"}
    import torch

    props = torch.cuda.get_device_properties(int(resolved.split(":")[1]))
    return {"device": resolved, "kind": "cuda", "name": props.name, "memory_bytes": float(props.total_memory),
            "memory_source": f"{resolved}'s total memory (torch)"}
