"""Beyond one device: a bench run's ranks under torchrun, the model spread over them, one record per configuration.

torchrun (torch.distributed.run) starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE`` and the rendezvous (https://pytorch.org/docs/stable/elastic/run.html); llmecon launches nothing
of its own beyond calling it for ``bench --nproc N``. Each rank runs the sweep's configurations in its own process
(torchrun is the isolation), in lockstep:

- **Process group**: NCCL on CUDA (``cuda:LOCAL_RANK``), gloo on a CPU; its timeout is the configuration's
  ``timeout_s`` plus a margin, so that rank 0's own clock (below) ends a hang first.
- **Spreading the model** (`wrap`), after the same seeded build on every rank:
  - ``ddp``: ``DistributedDataParallel`` (gradients as bucket views, so no second gradient copy); one replica and
    ``batch_size`` sequences per rank, the gradients all-reduced in buckets during the backward pass;
  - ``fsdp``: FSDP2's ``fully_shard`` on every decoder layer and then the root model (torchtitan's layout), so
    parameters, gradients and optimizer state are sharded and a model larger than one device fits; parameters stay
    fp32 and are all-gathered in fp32 (the bench's fp32-master recipe under autocast, as on one device);
  - ``tp``: ``parallelize_module`` with torch's ``ColwiseParallel`` / ``RowwiseParallel`` as the model config's
    own ``base_model_tp_plan`` says (attention and MLP projections; embeddings and LM head replicated), for
    prefill, decode and generate: the ranks share one batch and each layer all-reduces its activations twice.
- **Lockstep timing**: every `timing.measure` decision is agreed (`World.agree`, one tiny all-reduce outside the
  timed region), so all ranks make the same calls. After each round every rank's round is gathered to rank 0,
  which merges them (`merge_round`): sample i of the job is the slowest rank's sample i (the slowest rank sets the
  step); every rank's own samples, step time, peak memory and energy are kept in the record's ``distributed``
  block, and the job's energy is the sum over ranks.
- **Failures** (measure.rankfailure): a rank whose configuration raises writes why into the process group's store
  (``llmecon/fail/<rank>``) and waits for rank 0 to acknowledge before it exits; a rank killed outright leaves
  nothing, but its peers' collectives fail at once (connection closed) and they report that. Rank 0's watchdog
  thread reads the reports, writes the configuration's record with the status (oom, error, timeout), names the
  failed ranks, and ends its process: a collective that lost a rank cannot be trusted again. The watchdog also
  ends a configuration that runs longer than ``timeout_s`` (a rank that hangs): status ``timeout``. Records are
  written only by rank 0, atomically, so nothing is half-written; ``bench --resume`` (``--nproc`` does it by
  itself) continues with the configurations left.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from llmecon.stats import median_ci, quantile, summarize
from llmecon.measure.models import torch_dtype
from llmecon.measure.record import data_parallel_degree
from llmecon.vocab import DATA_PARALLELS

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
PG_TIMEOUT_MARGIN_S = 120.0  # the process group's timeout is the configuration's plus this: rank 0's clock comes first
_CAPS = (None, "max_time", "max_iters")
STEP_RULE = ("per timed call, the slowest rank's time (the ranks run in lockstep; the slowest sets the step)")


def torchrun_env(environ=os.environ) -> dict | None:
    """The rank's place in the world as torchrun (or another launcher setting its variables) describes it; None
    when this process was not started as one rank of several."""
    if not all(k in environ for k in TORCHRUN_ENV):
        return None
    world_size = int(environ["WORLD_SIZE"])
    local_world_size = int(environ.get("LOCAL_WORLD_SIZE", world_size))
    nnodes = int(environ.get("GROUP_WORLD_SIZE") or max(1, world_size // max(local_world_size, 1)))
    return {"rank": int(environ["RANK"]), "world_size": world_size, "local_rank": int(environ["LOCAL_RANK"]),
            "local_world_size": local_world_size, "nnodes": nnodes,
            "launcher": "torchrun" if "TORCHELASTIC_RUN_ID" in environ else "environment (RANK, WORLD_SIZE, LOCAL_RANK)"}


@dataclass
class World:
    """This rank's view of the process group: who it is, its device, and the few collectives the bench needs."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    nnodes: int
    launcher: str
    backend: str
    device: str
    host: str = field(default_factory=socket.gethostname)

    @classmethod
    def start(cls, device: str, timeout_s: float) -> "World":
        """Join the process group torchrun set up: NCCL on cuda:LOCAL_RANK when CUDA is asked for (or auto and
        present), gloo on a CPU."""
        import torch
        import torch.distributed as dist

        env = torchrun_env()
        if env is None:
            raise RuntimeError("not started by torchrun: RANK, WORLD_SIZE and LOCAL_RANK are not set")
        want = device.strip().lower()
        cuda = want.startswith("cuda") or (want == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(env["local_rank"])
        backend, dev = ("nccl", f"cuda:{env['local_rank']}") if cuda else ("gloo", "cpu")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend,
                                    timeout=datetime.timedelta(seconds=timeout_s + PG_TIMEOUT_MARGIN_S))
        return cls(backend=backend, device=dev, **env)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def store(self):
        import torch.distributed as dist

        return dist.distributed_c10d._get_default_store()

    def agree(self, satisfied: bool, cap: str | None) -> tuple[bool, str | None]:
        """timing.lockstep's rule: (every rank satisfied, the cap any rank hit): one all-reduce of two numbers."""
        import torch
        import torch.distributed as dist

        flags = torch.tensor([0 if satisfied else 1, _CAPS.index(cap)], dtype=torch.int64, device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        unsatisfied, code = (int(v) for v in flags.tolist())
        return unsatisfied == 0, _CAPS[code]

    def gather(self, obj: Any) -> list | None:
        """Every rank's ``obj`` on rank 0 (in rank order), None elsewhere."""
        import torch.distributed as dist

        out = [None] * self.world_size if self.leader else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        import torch.distributed as dist

        box = [obj if self.leader else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def wait_for_leader(self, key: str, timeout_s: float) -> None:
        """Wait (in the store, not a collective) until rank 0 `release`s ``key``: while it runs alone. In one-second
        slices, so that Ctrl-C (or torchrun's signal) reaches this rank between them."""
        store, deadline = self.store(), time.monotonic() + timeout_s + PG_TIMEOUT_MARGIN_S
        while not store.check([f"llmecon/{key}"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank 0 did not finish its single-device configurations within {timeout_s:g} s")
            time.sleep(1.0)

    def release(self, key: str) -> None:
        if self.leader:
            self.store().set(f"llmecon/{key}", "1")

    def mesh(self, name: str):
        from torch.distributed.device_mesh import init_device_mesh

        return init_device_mesh(self.device.split(":")[0], (self.world_size,), mesh_dim_names=(name,))

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------- spreading the model

def decoder_layers(model):
    """The decoder layers of a transformers CausalLM (``model.<base_model_prefix>.layers``)."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no decoder layers at {model.base_model_prefix}.layers to shard")
    return base, layers


def tp_styles(model) -> dict[str, Any]:
    """{module name: torch parallel style} from the model config's ``base_model_tp_plan`` (colwise and rowwise
    only); ValueError naming what is missing or not supported."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan = getattr(model.config, "base_model_tp_plan", None)
    if not plan:
        raise ValueError(f"{model.config.model_type}: the config has no base_model_tp_plan, so llmecon does not know "
                         "how to split it (tensor parallelism supports architectures that publish one)")
    known = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
    odd = sorted({s for s in plan.values() if s not in known})
    if odd:
        raise ValueError(f"{model.config.model_type}: its tp plan uses {', '.join(odd)}; llmecon applies colwise "
                         "and rowwise only")
    base, _ = decoder_layers(model)
    names = [n for n, _ in base.named_modules() if n]
    styles = {n: known[style]() for pattern, style in plan.items() for n in names if fnmatch.fnmatchcase(n, pattern)}
    if not styles:
        raise ValueError(f"{model.config.model_type}: its tp plan matches no module")
    return styles


def wrap(built, cfg: dict, world: World) -> str:
    """Spread ``built`` over the world for ``cfg['parallel']`` (in place; DDP's wrapper goes to ``built.module``);
    returns how, for the record."""
    parallel = cfg["parallel"]
    model = built.model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [world.local_rank] if world.device.startswith("cuda") else None
        built.module = DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)
        return ("DistributedDataParallel (torch.nn.parallel), default 25 MiB buckets, gradient_as_bucket_view; "
                "gradients all-reduced during the backward pass")
    if parallel == "fsdp":
        import torch
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = world.mesh("dp")
        half = cfg["dtype"] in ("bf16", "fp16")  # torchtitan's recipe: gather in the compute dtype, reduce in fp32
        policy = MixedPrecisionPolicy(param_dtype=torch_dtype(cfg["dtype"]) if half else None,
                                      reduce_dtype=torch.float32)
        _, layers = decoder_layers(model)
        for layer in layers:
            fully_shard(layer, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        return (f"FSDP2 fully_shard on each of the {len(layers)} decoder layers, then the root (embeddings, norm, LM "
                f"head); reshard after forward; fp32 master parameters all-gathered in {cfg['dtype'] if half else 'fp32'}"
                ", gradients reduce-scattered in fp32")
    if parallel == "tp":
        from torch.distributed.tensor.parallel import parallelize_module

        styles = tp_styles(model)
        base, _ = decoder_layers(model)
        parallelize_module(base, world.mesh("tp"), styles)
        kinds = sorted({type(s).__name__ for s in styles.values()})
        return (f"parallelize_module with the config's base_model_tp_plan ({len(styles)} projections as "
                f"{' / '.join(kinds)}); embeddings, norms and LM head replicated")
    raise ValueError(f"unknown parallelism {parallel!r}")


# ----------------------------------------------------------------------------------------------- merging ranks

def _slowest(values: list) -> float | None:
    finite = [v for v in values if v is not None]
    return max(finite) if len(finite) == len(values) else None


def _sum_or_none(values: list) -> float | None:
    return sum(values) if values and all(v is not None for v in values) else None


def merge_round(outs: list[dict], dp_degree: int) -> dict:
    """One round of the job from every rank's round (rank order): rank 0's structure, with each sample the slowest
    rank's, the statistics recomputed from those, validity the union, energy and power summed over ranks, the
    peak memory the largest, tokens per step the job's."""
    first = outs[0]
    rounds = [o["round"] for o in outs]
    counts = {len(r["samples_s"]) for r in rounds}
    merged = dict(first["round"])
    reasons = list(dict.fromkeys(x for r in rounds for x in r["validity"]["reasons"]))
    warnings = list({x.split(":")[0]: x for r in reversed(rounds) for x in r["validity"]["warnings"]}.values())
    if len(counts) != 1:
        reasons.append("ranks_out_of_step:" + ",".join(str(len(r["samples_s"])) for r in rounds))
        n = min(counts)
    else:
        n = counts.pop()
    samples = [_slowest([r["samples_s"][i] for r in rounds]) for i in range(n)]
    merged["samples_s"] = samples
    merged["n_samples"] = n
    if first["round"].get("device_samples_s") is not None:
        merged["device_samples_s"] = [_slowest([(r.get("device_samples_s") or [None] * n)[i] for r in rounds])
                                      for i in range(n)]
    for key in ("first_call_s", "total_s"):
        merged[key] = _slowest([r.get(key) for r in rounds])
    for key in ("ttft_samples_s", "tpot_samples_s"):
        if first["round"].get(key) is not None:
            lists = [r.get(key) or [] for r in rounds]
            size = min(len(x) for x in lists)
            merged[key] = [_slowest([x[i] for x in lists]) for i in range(size)]
    finite = [s for s in samples if s is not None]
    stats = summarize(finite)[0] if finite else {"mean_s": None, "median_s": None}
    ci = median_ci(finite) if len(finite) >= 2 else None
    merged.update(mean_s=stats["mean_s"], median_s=stats["median_s"], ci_low_s=ci[0] if ci else None,
                  ci_high_s=ci[1] if ci else None)
    merged["validity"] = {"valid": all(r["validity"]["valid"] for r in rounds) and len(set(map(len, (
        r["samples_s"] for r in rounds)))) == 1, "reasons": reasons, "warnings": warnings}
    tele = dict(first["telemetry"])
    for key in ("energy_j", "window_energy_j", "mean_power_w"):
        tele[key] = _sum_or_none([o["telemetry"].get(key) for o in outs])
    if tele.get("energy_j") is not None:
        tele["energy_source"] = f"the sum over the {len(outs)} ranks' devices"
    tele["tokens_in_samples"] = n * first["tokens_per_step"] * dp_degree
    memory = dict(first["memory"])
    memory["peak_bytes"] = _slowest([o["memory"].get("peak_bytes") for o in outs])
    return {**first, "round": merged, "telemetry": tele, "memory": memory,
            "tokens_per_step": first["tokens_per_step"] * dp_degree}


def rank_results(per_round: list[list[dict]], places: list[dict]) -> list[dict]:
    """The record's ``distributed.ranks``: each rank's own samples per round, its round means and step (median over
    rounds of its round means), its peak memory and energy. ``per_round[r][k]`` is rank k's round r."""
    out = []
    for k, place in enumerate(places):
        rounds = [rr[k] for rr in per_round]
        samples = [list(o["round"]["samples_s"]) for o in rounds]
        means = [(sum(s) / len(s)) if s and all(v is not None for v in s) else None for s in samples]
        finite = sorted(m for m in means if m is not None)
        peaks = [o["memory"].get("peak_bytes") for o in rounds if o["memory"].get("peak_bytes") is not None]
        energies = [o["telemetry"].get("energy_j") for o in rounds]
        powers = [o["telemetry"].get("mean_power_w") for o in rounds if o["telemetry"].get("mean_power_w") is not None]
        reasons = list(dict.fromkeys(x for o in rounds for x in o["round"]["validity"]["reasons"]))
        out.append({**place, "samples_s": samples, "round_means_s": means,
                    "step_s": quantile(finite, 0.5) if finite else None,
                    "peak_memory_bytes": max(peaks) if peaks else None, "energy_j": _sum_or_none(energies),
                    "mean_power_w": sum(powers) / len(powers) if powers else None,
                    "valid": all(o["round"]["validity"]["valid"] for o in rounds), "reasons": reasons})
    return out


def distributed_block(cfg: dict, world: World, wrapping: str, ranks: list[dict], comm: dict | None,
                      comm_method: str | None, failed_ranks: list[int] = ()) -> dict:
    """The record's ``distributed`` block (a failed configuration's: no ranks' results, the failed ranks)."""
    dp = data_parallel_degree(cfg)
    steps = [(r["step_s"], r["rank"]) for r in ranks if r["step_s"] is not None]
    return {"parallel": cfg["parallel"], "world_size": world.world_size, "nnodes": world.nnodes,
            "backend": world.backend, "mesh_shape": [world.world_size],
            "mesh_dim_names": ["dp" if cfg["parallel"] in DATA_PARALLELS else "tp"],
            "per_rank_batch_size": cfg["batch_size"], "global_batch_size": cfg["batch_size"] * dp,
            "wrapping": wrapping, "step_rule": STEP_RULE, "ranks": ranks,
            "slowest_rank": max(steps)[1] if steps else None, "comm_counted": comm,
            "comm_counted_method": comm_method, "failed_ranks": list(failed_ranks)}
