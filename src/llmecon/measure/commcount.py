"""Counts that timing noise cannot move, for communication: the collectives one step issues and their bytes.

`CollectiveCounter` is a ``TorchDispatchMode`` (the mechanism of opcount.py): every c10d op (``c10d.allreduce_``
of DDP's reducer, ``c10d._allgather_base_`` / ``c10d._reduce_scatter_base_`` of FSDP2, ``c10d.broadcast_`` of
DDP's buffer sync) and every functional collective (``_c10d_functional.all_reduce`` of a DTensor
redistribution, ...) that reaches the dispatcher while it is active is counted under its canonical name,
with its bytes in the nccl-tests full-buffer convention
(https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md), so that bytes / busbw (collectives.py)
is the time the collective should take:

- all_reduce, broadcast, reduce: the buffer;
- all_gather: the gathered OUTPUT (n times what one rank sends);
- reduce_scatter: the INPUT (n times what one rank receives);
- all_to_all: the input; send_recv: the buffer sent or received.

One call of a coalesced op (several tensors) is one call with the bytes of all its tensors. Wrappers that
move nothing (``wait_tensor``, ``_wrap_tensor_autograd``), barriers and NaN checks are not counted. A
collective op this module does not know is counted under its qualified name with ``bytes`` None, never
dropped. A collective that a C++ op issues inside another op (not through the Python dispatcher) is not seen.

torch.distributed.tensor.debug.CommDebugMode does this too, but its module tracker fails on transformers
models; this counter tracks no modules. Use it around one untimed step, on every rank:

    with CollectiveCounter() as counter:
        step()
    counter.counts()  # {"all_reduce": {"calls": 1, "bytes": 558336}, ...}

The class is made on first use (its base class is torch's): importing this module imports no torch.
"""

from __future__ import annotations

import functools
import threading

CANONICAL_OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "all_to_all", "send_recv")
NAMESPACES = ("c10d", "_c10d_functional", "_c10d_functional_autograd", "_dtensor")
IGNORED = frozenset({
    "_c10d_functional.wait_tensor", "_c10d_functional._wrap_tensor_autograd",
    "c10d.barrier", "c10d.monitored_barrier_", "c10d.check_for_nan",
})

# qualified op name -> (canonical op, where its full buffer is: an argument's name, or "result")
RULES: dict[str, tuple[str, str]] = {
    "c10d.allreduce_": ("all_reduce", "tensors"),
    "c10d.allreduce_coalesced_": ("all_reduce", "tensors"),
    "c10d.allgather_": ("all_gather", "output_tensors"),
    "c10d._allgather_base_": ("all_gather", "output_tensor"),
    "c10d.allgather_coalesced_": ("all_gather", "output_lists"),
    "c10d.allgather_into_tensor_coalesced_": ("all_gather", "outputs"),
    "c10d.reduce_scatter_": ("reduce_scatter", "input_tensors"),
    "c10d._reduce_scatter_base_": ("reduce_scatter", "input_tensor"),
    "c10d.reduce_scatter_tensor_coalesced_": ("reduce_scatter", "inputs"),
    "c10d.broadcast_": ("broadcast", "tensors"),
    "c10d.reduce_": ("reduce", "tensors"),
    "c10d.alltoall_": ("all_to_all", "input_tensors"),
    "c10d.alltoall_base_": ("all_to_all", "input"),
    "c10d.send": ("send_recv", "tensors"),
    "c10d.recv_": ("send_recv", "tensors"),
    "c10d.recv_any_source_": ("send_recv", "tensors"),
    "_c10d_functional.all_reduce": ("all_reduce", "input"),
    "_c10d_functional.all_reduce_": ("all_reduce", "input"),
    "_c10d_functional.all_reduce_coalesced": ("all_reduce", "inputs"),
    "_c10d_functional.all_reduce_coalesced_": ("all_reduce", "inputs"),
    "_c10d_functional.all_gather_into_tensor": ("all_gather", "result"),
    "_c10d_functional.all_gather_into_tensor_out": ("all_gather", "result"),
    "_c10d_functional.all_gather_into_tensor_coalesced": ("all_gather", "result"),
    "_c10d_functional.reduce_scatter_tensor": ("reduce_scatter", "input"),
    "_c10d_functional.reduce_scatter_tensor_out": ("reduce_scatter", "input"),
    "_c10d_functional.reduce_scatter_tensor_coalesced": ("reduce_scatter", "inputs"),
    "_c10d_functional.broadcast": ("broadcast", "input"),
    "_c10d_functional.broadcast_": ("broadcast", "input"),
    "_c10d_functional.all_to_all_single": ("all_to_all", "input"),
    "_c10d_functional.isend": ("send_recv", "tensor"),
    "_c10d_functional.irecv": ("send_recv", "tensor"),
    "_c10d_functional.batch_p2p_ops": ("send_recv", "tensors"),
    "_c10d_functional_autograd.all_gather_into_tensor": ("all_gather", "result"),
    "_c10d_functional_autograd.reduce_scatter_tensor": ("reduce_scatter", "input"),
    "_c10d_functional_autograd.all_to_all_single": ("all_to_all", "input"),
    "_dtensor.shard_dim_alltoall": ("all_to_all", "input"),
}


def tensor_bytes(value) -> int:
    """Bytes of the tensors in ``value`` (a tensor, or nested lists / tuples of them; anything else is 0)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


def qualified_name(func) -> str:
    """'c10d.allreduce_' for the OpOverload c10d::allreduce_.default."""
    return f"{func.namespace}.{func._schema.name.split('::', 1)[1]}"


def classify(func, args: tuple, kwargs: dict, result) -> tuple[str, int | None] | None:
    """(canonical op, full-buffer bytes) of one dispatched call; None when it is not a collective to count."""
    if getattr(func, "namespace", None) not in NAMESPACES:
        return None
    name = qualified_name(func)
    if name in IGNORED:
        return None
    if name not in RULES:
        return name, None
    op, where = RULES[name]
    if where == "result":
        return op, tensor_bytes(result)
    bound = dict(zip((a.name for a in func._schema.arguments), args))
    bound.update(kwargs)
    return op, tensor_bytes(bound.get(where))


@functools.lru_cache(maxsize=None)
def _counter_class():
    """The counter's class, made on first use: its base is torch's, and importing this module imports no torch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class CollectiveCounter(TorchDispatchMode):
        """Counts calls and full-buffer bytes per collective while active (``with CollectiveCounter() as c``)."""

        def __init__(self):
            super().__init__()
            self._lock = threading.Lock()  # a backward pass may run on autograd's device threads
            self._counts: dict[str, dict] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            seen = classify(func, args, kwargs, result)
            if seen is not None:
                op, nbytes = seen
                with self._lock:
                    entry = self._counts.setdefault(op, {"calls": 0, "bytes": 0})
                    entry["calls"] += 1
                    entry["bytes"] = None if nbytes is None or entry["bytes"] is None else entry["bytes"] + nbytes
            return result

        def counts(self) -> dict:
            """{op: {"calls": n, "bytes": b}}, a plain dict sorted by op (a copy: counting may go on)."""
            with self._lock:
                return {op: dict(v) for op, v in sorted(self._counts.items())}

    return CollectiveCounter


def collective_counter():
    """A new `CollectiveCounter`."""
    return _counter_class()()


def __getattr__(name: str):
    if name == "CollectiveCounter":
        return _counter_class()
    raise AttributeError(name)
