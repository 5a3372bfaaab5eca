"""Communication of multi-device training and inference: the bytes each parallelism moves per step, the time
a collective takes at a bus bandwidth, and the step time at K ranks. Pure Python (no torch).

Bytes follow the FULL-buffer convention of nccl-tests (https://github.com/NVIDIA/nccl-tests/blob/master/doc/
PERFORMANCE.md): the size S of an all-reduce is its buffer; of an all-gather, the gathered OUTPUT (every rank's
piece); of a reduce-scatter, the INPUT (the full buffer each rank reduces); of a send/recv, the message. Every
figure below is per rank and per step, as a dict {collective: bytes}.

DDP (torch DistributedDataParallel): one all-reduce of every gradient per step, params_total x gradient bytes.
    Our training keeps fp32 master weights, so gradients are fp32 (4 B) even under bf16 autocast.
FSDP2 (torch ``fully_shard`` on each decoder layer, then on the root; reshard_after_forward=True): each unit's
    parameters are all-gathered in the forward; the layer units are resharded after it and gathered again in
    the backward, the root unit (embeddings, final norm, LM head) is not; the gradients are reduce-scattered
    once. all_gather = (params_total + layer params) x param bytes; reduce_scatter = params_total x gradient
    bytes. Without a MixedPrecisionPolicy the parameters are gathered in fp32 (4 B). On the ``tiny`` preset in
    fp32 this is 558,336 + 295,936 = 854,272 B gathered and 558,336 B reduce-scattered, the bytes measured
    on 2 ranks.
TP (Megatron-style: Shoeybi et al. 2019, arXiv:1909.08053 §3, as torch ColwiseParallel on q/k/v/gate/up and
    RowwiseParallel on o/down; embeddings and LM head replicated): two all-reduces per layer in the forward
    (after the attention output projection and after the MLP down projection), each of
    batch x tokens x hidden x activation bytes; the backward has two more (the conjugate all-reduces of the
    column-parallel inputs). Prefill: tokens = seq_len; decode: 1 token per sequence per step.
Pipeline (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
    Megatron-LM", arXiv:2104.04473, §2.2): each stage boundary sends microbatch x seq x hidden activations in
    the forward and as many gradients in the backward, per microbatch; a middle stage sends
    2 x m x b x s x h x bytes per step. The pipeline bubble is (p - 1) / m of the ideal compute time (§2.2.1,
    GPipe/1F1B schedule), a separate term.

Time of a collective (nccl-tests PERFORMANCE.md): algbw = S / t and busbw = algbw x factor, with factor
2(n-1)/n for all-reduce, (n-1)/n for all-gather and reduce-scatter, 1 for send/recv; so t = S x factor / busbw.
busbw is the per-rank, one-direction rate a ring reaches: nccl-tests compares it with the hardware's link speed.

Which bandwidth (hierarchical): a group of n ranks, `stride` apart in rank order (ranks fill a node first),
stays inside one node when stride x n <= GPUs per node, and then runs at the NVLink bus bandwidth: half the
bidirectional total NVIDIA quotes (A100 SXM 600 GB/s -> 300 GB/s each way). A group that spans nodes runs at
the network bandwidth per GPU, one direction (a ring across nodes is as slow as its slowest hop). So with TP
inside a node and DP across nodes, the TP all-reduces use NVLink and the DP gradient all-reduce the network;
that is optimistic for the DP ring only in ignoring NCCL's latency terms and the share of the node's
NICs (one NIC per GPU in DGX nodes, which the per-GPU network figure already assumes).

Step time at K ranks: t(K) = t_compute x (1 + bubble) + (1 - overlap) x t_comm(K), with overlap in [0, 1]
the share of the communication hidden behind compute (0 unless a calibration measured it).
"""

from __future__ import annotations

from typing import Mapping

from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.memory import BYTES_PER_ELEMENT
from llmecon.errors import UserError, require_count, require_positive

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "send_recv")
PARALLELISMS = ("ddp", "fsdp", "tp")
GRADIENT_BYTES = 4      # fp32 master weights: fp32 gradients whatever the autocast dtype
FSDP_PARAM_BYTES = 4    # fp32 runs gather the fp32 parameters (bf16 and fp16 runs gather in their dtype: step_bytes)
TP_ALL_REDUCES_PER_LAYER = 2   # after o_proj and after down_proj (Shoeybi et al. 2019 §3, Figure 3)
NVLINK_DIRECTIONS = 2   # NVIDIA quotes NVLink as the sum of both directions


def check_parallel(parallel: str) -> str:
    if parallel not in PARALLELISMS:
        raise UserError(f"unknown --parallel {parallel!r}; known: {', '.join(PARALLELISMS)}")
    return parallel


def activation_bytes(dtype: str) -> int:
    """Bytes of one activation element in this dtype (bf16 autocast: the matmul outputs are bf16)."""
    if dtype not in BYTES_PER_ELEMENT:
        raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(BYTES_PER_ELEMENT)}")
    return BYTES_PER_ELEMENT[dtype]


# ------------------------------------------------------------------------------------------ bytes per step

def ddp_step_bytes(shape: ModelShape, gradient_bytes: int = GRADIENT_BYTES) -> dict[str, float]:
    """One all-reduce of every gradient (see the module docstring)."""
    return {"all_reduce": float(shape.params_total * gradient_bytes)}


def fsdp_root_params(shape: ModelShape) -> int:
    """Parameters of the root FSDP unit: everything outside the decoder layers (token and position tables,
    an untied LM head, OPT's projections, the final norm)."""
    b = shape.param_breakdown()
    final_norm = shape.norm_params if shape.final_norm else 0
    return b["token_embedding"] + b["position_embedding"] + b["lm_head"] + b["projections"] + final_norm


def fsdp_step_bytes(shape: ModelShape, param_bytes: int = FSDP_PARAM_BYTES,
                    gradient_bytes: int = GRADIENT_BYTES) -> dict[str, float]:
    """Forward all-gathers of every unit, backward all-gathers of the layer units, one reduce-scatter."""
    layers = shape.params_total - fsdp_root_params(shape)
    return {"all_gather": float((shape.params_total + layers) * param_bytes),
            "reduce_scatter": float(shape.params_total * gradient_bytes)}


def tp_step_bytes(shape: ModelShape, batch_size: int, tokens: int, dtype: str,
                  phase: str = "train") -> dict[str, float]:
    """2 activation all-reduces per layer in the forward (x2 when trained), batch x tokens x hidden each.
    ``tokens``: seq_len for prefill and train, 1 for a decode step."""
    B, T = require_count("batch_size", batch_size), require_count("tokens", tokens)
    passes = {"prefill": 1, "decode": 1, "train": 2}
    if phase not in passes:
        raise UserError(f"unknown phase {phase!r}; known: {', '.join(passes)}")
    one = B * T * shape.hidden_size * activation_bytes(dtype)
    return {"all_reduce": float(passes[phase] * TP_ALL_REDUCES_PER_LAYER * shape.num_hidden_layers * one)}


def pipeline_step_bytes(shape: ModelShape, microbatch_size: int, seq_len: int, microbatches: int,
                        dtype: str) -> dict[str, float]:
    """What a middle pipeline stage sends per step: activations forward and gradients backward, per microbatch."""
    b, s = require_count("microbatch_size", microbatch_size), require_count("seq_len", seq_len)
    m = require_count("microbatches", microbatches)
    return {"send_recv": float(2 * m * b * s * shape.hidden_size * activation_bytes(dtype))}


def pipeline_bubble_fraction(stages: int, microbatches: int) -> float:
    """(p - 1) / m: the idle share of a 1F1B pipeline, relative to the ideal compute time (Narayanan et al.
    2021, §2.2.1)."""
    p, m = require_count("pipeline stages", stages), require_count("microbatches", microbatches)
    return (p - 1) / m


def check_tp_degree(shape: ModelShape, degree: int) -> int:
    """A TP degree must divide the query heads and the KV heads (ColwiseParallel shards q/k/v by head)."""
    k = require_count("tensor-parallel degree", degree)
    for what, heads in (("attention heads", shape.num_attention_heads), ("KV heads", shape.num_key_value_heads)):
        if heads % k:
            raise UserError(f"tensor parallelism over {k} devices needs {shape.name}'s {what} ({heads}) to be a "
                            f"multiple of {k}")
    return k


def step_bytes(shape: ModelShape, parallel: str, *, batch_size: int, seq_len: int, dtype: str,
               phase: str = "train") -> dict[str, float]:
    """Per-rank bytes of one step, by collective. ``batch_size``: per device for ddp/fsdp, shared for tp."""
    check_parallel(parallel)
    if parallel == "tp":
        return tp_step_bytes(shape, batch_size, 1 if phase == "decode" else seq_len, dtype, phase)
    if phase != "train":
        raise UserError(f"{parallel} communicates gradients: it has a train step only, not {phase}")
    if parallel == "ddp":
        return ddp_step_bytes(shape)
    # FSDP2 gathers the fp32 master parameters in the compute dtype (MixedPrecisionPolicy's param_dtype: bf16 or
    # fp16 runs; fp32 and tf32 gather fp32) and reduce-scatters the gradients in fp32 (measure.distributed.wrap)
    return fsdp_step_bytes(shape, param_bytes=activation_bytes(dtype))


# ------------------------------------------------------------------------------------------ time

# doc/PERFORMANCE.md, "Summary": the correction applied to algbw so that busbw compares across rank counts
_BUS_FACTORS = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "reduce": lambda n: 1.0,
    "send_recv": lambda n: 1.0,
}


def bus_factor(op: str, ranks: int) -> float:
    """busbw / algbw for a collective over n ranks (nccl-tests PERFORMANCE.md): 2(n-1)/n for all-reduce,
    (n-1)/n for all-gather, reduce-scatter and all-to-all, 1 for broadcast, reduce and send/recv. The one copy:
    measure.collectives reports busbw with it."""
    if op not in _BUS_FACTORS:
        raise UserError(f"unknown collective {op!r}; known: {', '.join(_BUS_FACTORS)}")
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise UserError(f"ranks must be a positive whole number, got {ranks!r}")
    return _BUS_FACTORS[op](ranks)


def collective_time_s(op: str, size_bytes: float, ranks: int, busbw_bytes_per_s: float) -> float:
    """t = S x factor / busbw (nccl-tests PERFORMANCE.md: busbw = S / t x factor)."""
    return (require_positive("size_bytes", size_bytes, allow_zero=True) * bus_factor(op, ranks)
            / require_positive("bus bandwidth", busbw_bytes_per_s))


def comm_time_s(bytes_by_op: Mapping[str, float], ranks: int,
                busbw_bytes_per_s: float | Mapping[str, float]) -> float:
    """Sum of the collectives' times; the bandwidth is one number or one per collective."""
    total = 0.0
    for op, size in bytes_by_op.items():
        bw = busbw_bytes_per_s[op] if isinstance(busbw_bytes_per_s, Mapping) else busbw_bytes_per_s
        total += collective_time_s(op, size, ranks, bw)
    return total


def nvlink_bus_bytes_per_s(nvlink_bidirectional_bytes_per_s: float) -> float:
    """The one-direction NVLink rate a ring can use: half the bidirectional total NVIDIA quotes."""
    return require_positive("nvlink bandwidth", nvlink_bidirectional_bytes_per_s) / NVLINK_DIRECTIONS


def spans_nodes(group_size: int, stride: int, gpus_per_node: int) -> bool:
    """Whether a group of ranks `stride` apart (ranks fill a node first) leaves one node."""
    return require_count("group size", group_size) * require_count("stride", stride) > \
        require_count("gpus per node", gpus_per_node)


def link_bus_bytes_per_s(group_size: int, stride: int, gpus_per_node: int, nvlink_bytes_per_s: float | None,
                         network_bytes_per_s: float | None) -> tuple[float, str]:
    """(bus bandwidth, "nvlink" | "network") of a group: NVLink inside a node, the network per GPU across nodes
    (see the module docstring). ``nvlink_bytes_per_s``: the bidirectional datasheet total; ``network_bytes_per_s``:
    per GPU, one direction. UserError when the one needed is unknown."""
    if spans_nodes(group_size, stride, gpus_per_node):
        if network_bytes_per_s is None:
            raise UserError("the group spans nodes but the hardware sheet has no network_bytes_per_s: give --busbw")
        return float(network_bytes_per_s), "network"
    if nvlink_bytes_per_s is None:
        raise UserError("the hardware sheet has no nvlink_bytes_per_s for this accelerator: give --busbw")
    return nvlink_bus_bytes_per_s(nvlink_bytes_per_s), "nvlink"


def step_time_s(compute_s: float, comm_s: float, overlap: float = 0.0, bubble_fraction: float = 0.0) -> float:
    """t(K) = t_compute x (1 + bubble) + (1 - overlap) x t_comm (module docstring)."""
    if not 0.0 <= overlap <= 1.0:
        raise UserError(f"overlap must be in [0, 1], got {overlap!r}")
    return compute_s * (1.0 + bubble_fraction) + (1.0 - overlap) * comm_s


__all__ = ["COLLECTIVES", "PARALLELISMS", "GRADIENT_BYTES", "ddp_step_bytes", "fsdp_step_bytes", "tp_step_bytes",
           "pipeline_step_bytes", "pipeline_bubble_fraction", "check_tp_degree", "step_bytes", "bus_factor",
           "collective_time_s", "comm_time_s", "nvlink_bus_bytes_per_s", "spans_nodes", "link_bus_bytes_per_s",
           "step_time_s", "fsdp_root_params", "activation_bytes", "check_parallel"]


def three_d_step(shape: ModelShape, *, tp: int, pp: int, dp: int, global_batch: int, microbatch: int, seq_len: int,
                 dtype: str, compute_s: float, gpus_per_node: int, nvlink_bytes_per_s: float | None,
                 network_bytes_per_s: float | None, overlap: float = 0.0) -> dict:
    """One iteration of a Megatron-style 3D layout (TP innermost, then PP, then DP; Narayanan et al. 2021 §3):
    per rank, the TP activation all-reduces of its pp-th of the layers for each of its m = global_batch / (dp x
    microbatch) microbatches, the pipeline send/recv of each microbatch (1/tp of it per rank: the paper's
    scatter/gather optimization, §4.1), the DP all-reduce of its 1/(tp x pp) of the fp32 gradients, and the bubble
    (p - 1) / m. ``compute_s``: the rank's ideal compute time for the iteration. Each group's bandwidth is chosen
    by `link_bus_bytes_per_s` from its size and stride."""
    if shape.num_hidden_layers % pp or global_batch % (dp * microbatch):
        raise UserError(f"the layout does not divide: {shape.num_hidden_layers} layers over {pp} stages, batch "
                        f"{global_batch} over {dp} x microbatch {microbatch}")
    check_tp_degree(shape, tp)
    m = global_batch // (dp * microbatch)
    per_mb = tp_step_bytes(shape, microbatch, seq_len, dtype, "train")["all_reduce"] / pp
    groups = {  # op: (bytes per rank, group size, stride)
        "tp all-reduce": ("all_reduce", m * per_mb, tp, 1),
        "pp send/recv": ("send_recv", pipeline_step_bytes(shape, microbatch, seq_len, m, dtype)["send_recv"] / tp,
                         2, tp),
        "dp all-reduce": ("all_reduce", shape.params_total / (tp * pp) * GRADIENT_BYTES, dp, tp * pp),
    }
    terms = {}
    for name, (op, size, n, stride) in groups.items():
        if n == 1 or (name == "pp send/recv" and pp == 1):
            terms[name] = {"bytes": 0.0, "time_s": 0.0, "link": "none", "busbw_bytes_per_s": None}
            continue
        bw, link = link_bus_bytes_per_s(n, stride, gpus_per_node, nvlink_bytes_per_s, network_bytes_per_s)
        ranks = n if op != "send_recv" else 2
        terms[name] = {"bytes": size, "time_s": collective_time_s(op, size, ranks, bw), "link": link,
                       "busbw_bytes_per_s": bw}
    comm_s = sum(t["time_s"] for t in terms.values())
    bubble = pipeline_bubble_fraction(pp, m)
    step_s = step_time_s(compute_s, comm_s, overlap, bubble)
    return {"terms": terms, "microbatches": m, "bubble_fraction": bubble, "compute_time_s": compute_s,
            "bubble_time_s": compute_s * bubble, "comm_time_s": comm_s, "exposed_comm_time_s": (1 - overlap) * comm_s,
            "step_time_s": step_s, "comm_share": (1 - overlap) * comm_s / step_s,
            "bubble_share": compute_s * bubble / step_s, "compute_share": compute_s / step_s, "overlap": overlap}
