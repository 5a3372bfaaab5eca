"""The record format's blocks for runs beyond one device (schema 6): run.json's world and measured interconnect,
a record's ranks and the collectives one step issued. Declared here, used by ``schema.Run`` and ``schema.Record``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from llmecon.formats import Strict


class Collective(Strict):
    """One collective at one size, timed across the world at the start of a distributed run
    (measure.collectives; bus bandwidth as nccl-tests defines it)."""

    op: str                                  # all_reduce, all_gather
    size_bytes: PositiveInt                  # the full buffer: all-reduce's, all-gather's gathered output
    time_s: PositiveFloat
    algbw_bytes_per_s: PositiveFloat
    busbw_bytes_per_s: PositiveFloat
    samples: PositiveInt | None = None
    statistic: str | None = None


class Interconnect(Strict):
    collectives: list[Collective]
    backend: str
    world_size: PositiveInt
    dtype: str | None = None
    timing_method: str | None = None
    definition: str | None = None


class DistributedRun(Strict):
    """The world a distributed run measured in (torchrun's environment) and the interconnect it measured."""

    world_size: PositiveInt
    nnodes: PositiveInt
    nproc_per_node: PositiveInt
    backend: str
    launcher: str                            # torchrun (elastic agent), or another launcher setting the env vars
    hosts: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)   # per rank: the device name it ran on
    interconnect: Interconnect | None = None
    interconnect_reason: str | None = None


class CollectiveCount(Strict):
    calls: NonNegativeInt
    bytes: NonNegativeInt


class RankResult(Strict):
    """One rank's own view of a distributed configuration, as gathered by rank 0."""

    rank: NonNegativeInt
    local_rank: NonNegativeInt
    host: str
    device: str
    samples_s: list[list[float | None]]      # per round, this rank's timed calls
    round_means_s: list[float | None]
    step_s: float | None                     # median over rounds of this rank's round means
    peak_memory_bytes: NonNegativeFloat | None = None
    energy_j: NonNegativeFloat | None = None
    mean_power_w: NonNegativeFloat | None = None
    valid: bool = True
    reasons: list[str] = Field(default_factory=list)


class Distributed(Strict):
    """How a configuration ran beyond one device: the world, the mesh, every rank, what one step communicated."""

    parallel: Literal["ddp", "fsdp", "tp"]
    world_size: PositiveInt
    nnodes: PositiveInt
    backend: str
    mesh_shape: list[PositiveInt]
    mesh_dim_names: list[str]
    per_rank_batch_size: PositiveInt
    global_batch_size: PositiveInt
    wrapping: str                            # how the model was distributed (DDP, fully_shard units, TP plan)
    step_rule: str                           # how the ranks' times make the job's step
    ranks: list[RankResult] = Field(default_factory=list)
    slowest_rank: NonNegativeInt | None = None
    comm_counted: dict[str, CollectiveCount] | None = None   # one step on rank 0 (measure.commcount)
    comm_counted_method: str | None = None
    failed_ranks: list[NonNegativeInt] = Field(default_factory=list)
