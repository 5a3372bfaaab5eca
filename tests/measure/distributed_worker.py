"""One rank of a 2-process gloo test: ``python distributed_worker.py SCENARIO RANK WORLD STORE_FILE OUT_JSON``.

The ranks meet through a FileStore (no port to pick), every process group times out in 30 s, and the rank writes
what it measured to OUT_JSON for the test (tests/measure/test_collectives.py, test_commcount.py) to check.
Scenarios: ``collectives`` (measure_collectives on CPU and on the fake CUDA backend of fakes.py) and
``commcount`` (CollectiveCounter around a DDP train step, an FSDP2 train step and a tensor-parallel prefill of
the tiny preset).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from llmecon.measure import device as device_mod
from llmecon.measure.collectives import measure_collectives
from llmecon.measure.commcount import CollectiveCounter
from llmecon.measure.models import build_model

TIMEOUT = datetime.timedelta(seconds=30)
BATCH, SEQ = 2, 32


def _fakes():
    spec = importlib.util.spec_from_file_location("llmecon_test_fakes", Path(__file__).with_name("fakes.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def collectives() -> dict:
    sizes = (64 << 10, 256 << 10)
    cpu = measure_collectives("cpu", "fp32", sizes, iters=3, warmup=1, samples=2)
    device_mod.BACKEND_FACTORY = _fakes().FakeFactory(event_factor=1.0)
    fake_cuda = measure_collectives("cuda:0", "fp32", (64 << 10,), iters=2, warmup=1, samples=2)
    device_mod.BACKEND_FACTORY = device_mod._default_factory
    return {"cpu": cpu, "fake_cuda": fake_cuda}


def _tiny(train: bool):
    return build_model("tiny", device="cpu", dtype="fp32", layers=None, attn_implementation="sdpa",
                       weights="random", train=train).model


def _ids(model):
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, model.config.vocab_size, (BATCH, SEQ), generator=gen)


def _ddp() -> dict:
    from torch.nn.parallel import DistributedDataParallel

    model = _tiny(train=True)
    wrapped = DistributedDataParallel(model)
    ids = _ids(model)
    with CollectiveCounter() as counter:
        wrapped(input_ids=ids, labels=ids).loss.backward()
    return {"counts": counter.counts(), "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "buffer_bytes": sum(b.numel() * b.element_size() for b in model.buffers())}


def _fsdp() -> dict:
    from torch.distributed.fsdp import fully_shard

    model = _tiny(train=True)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    layer_bytes = [sum(p.numel() * p.element_size() for p in layer.parameters()) for layer in model.model.layers]
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    ids = _ids(model)
    with CollectiveCounter() as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    return {"counts": counter.counts(), "param_bytes": param_bytes, "layer_bytes": layer_bytes}


def _tp() -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    model = _tiny(train=False)
    styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
    plan = {path: styles[style]() for path, style in model.config.base_model_tp_plan.items()}
    parallelize_module(model.model, init_device_mesh("cpu", (dist.get_world_size(),)), plan)
    ids = _ids(model)
    with torch.no_grad(), CollectiveCounter() as counter:
        model(input_ids=ids)
    cfg = model.config
    return {"counts": counter.counts(), "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
            "batch": BATCH, "seq": SEQ, "plan": dict(cfg.base_model_tp_plan)}


def commcount() -> dict:
    return {"ddp": _ddp(), "fsdp": _fsdp(), "tp": _tp()}


def main(argv: list[str]) -> None:
    scenario, rank, world, store_file, out = argv
    store = dist.FileStore(store_file, int(world))
    dist.init_process_group("gloo", store=store, rank=int(rank), world_size=int(world), timeout=TIMEOUT)
    try:
        result = {"collectives": collectives, "commcount": commcount}[scenario]()
    finally:
        dist.destroy_process_group()
    Path(out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
