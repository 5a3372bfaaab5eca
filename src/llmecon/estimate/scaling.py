"""The communication term of a training step on K accelerators (`llmecon estimate training --num-accelerators K
--parallel ddp|fsdp|tp [--busbw GB/s]`): the step split into compute and exposed communication, and the MFU per
device that results. The formulas are costmodel.communication's; this module picks their inputs.

Compute per rank: the one-device step of the per-device batch (ddp, fsdp), or 1/K of the step of the shared batch
(tp). Bandwidth: ``--busbw`` (a measured nccl-tests bus bandwidth, GB/s) if given, else the hardware sheet's:
NVLink (half its bidirectional total) while the K ranks fit one node, the network per GPU once they span nodes.
Overlap: the calibration's fitted share for this hardware and parallelism (its ``communication`` section), else 0
(no overlap: all communication is exposed, a pessimistic bound). An accelerator with no link figures and no
--busbw gets no communication term: perfect scaling, said in the notes.
"""

from __future__ import annotations

from llmecon.calibration.document import Calibration
from llmecon.costmodel import communication as cc
from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.hardware import Accelerator
from llmecon.units import parse_count

DEFAULT_PARALLEL = "ddp"
NO_LINKS = ("{hw} has no link bandwidth in the hardware sheet and no --busbw was given: K accelerators are assumed "
            "to scale perfectly (no communication term).")


def _bandwidth(k: int, accelerator: Accelerator | None, busbw) -> tuple[float, str] | None:
    if busbw is not None:
        return parse_count("--busbw", busbw) * 1e9, "--busbw (measured)"
    if accelerator is None or accelerator.gpus_per_node is None or (
            accelerator.nvlink_bytes_per_s is None and accelerator.network_bytes_per_s is None):
        return None
    bw, link = cc.link_bus_bytes_per_s(k, 1, accelerator.gpus_per_node, accelerator.nvlink_bytes_per_s,
                                       accelerator.network_bytes_per_s)
    return bw, f"datasheet {link}" + (" (half the bidirectional total)" if link == "nvlink" else " per GPU")


def communication_term(shape: ModelShape, parallel: str, k: int, *, batch_size: int, seq_len: int, dtype: str,
                       one_device_step_s: float, mfu_one_device: float, accelerator: Accelerator | None,
                       hardware: str, calibration: Calibration | None, busbw=None) -> tuple[dict | None, list[str]]:
    """({compute_time_s, comm_time_s, exposed_comm_time_s, step_time_s, comm_share, mfu_per_device, bytes_by_op,
    busbw_bytes_per_s, busbw_source, overlap, overlap_source, ...}, notes), or (None, notes) when K = 1 or no
    bandwidth is known. ``one_device_step_s``: one device's step of ``batch_size`` x ``seq_len`` at
    ``mfu_one_device``."""
    cc.check_parallel(parallel)
    if parallel == "tp":
        cc.check_tp_degree(shape, k)
    if k == 1:
        return None, []
    bandwidth = _bandwidth(k, accelerator, busbw)
    if bandwidth is None:
        return None, [NO_LINKS.format(hw=hardware)]
    bw, bw_source = bandwidth
    by_op = cc.step_bytes(shape, parallel, batch_size=batch_size, seq_len=seq_len, dtype=dtype, phase="train")
    compute_s = one_device_step_s / k if parallel == "tp" else one_device_step_s
    comm_s = cc.comm_time_s(by_op, k, bw)
    fit = calibration.communication_for(hardware, parallel) if calibration is not None else None
    overlap = fit.overlap if fit is not None else 0.0
    step_s = cc.step_time_s(compute_s, comm_s, overlap)
    if fit is None:
        notes = [f"no multi-device measurement: {'measured --busbw' if busbw is not None else 'datasheet'} "
                 "bandwidth, overlap 0 (all communication exposed)."]
        overlap_source = "default 0 (no overlap)"
    else:
        overlap_source = f"calibrated ({fit.n_points} points, world sizes {fit.world_sizes})"
        notes = [f"overlap {overlap:.0%} fitted for {parallel} on {fit.hardware} at world sizes "
                 f"{', '.join(map(str, fit.world_sizes))}."]
        if k > fit.max_world_size:
            notes.append(f"K = {k:,} is beyond what was measured (largest world size {fit.max_world_size}).")
    return {"parallel": parallel, "bytes_by_op": by_op, "bytes_per_step": sum(by_op.values()),
            "busbw_bytes_per_s": bw, "busbw_source": bw_source, "overlap": overlap, "overlap_source": overlap_source,
            "compute_time_s": compute_s, "comm_time_s": comm_s, "exposed_comm_time_s": (1 - overlap) * comm_s,
            "step_time_s": step_s, "comm_share": (1 - overlap) * comm_s / step_s,
            "mfu_compute": mfu_one_device, "mfu_per_device": mfu_one_device * compute_s / step_s}, notes
