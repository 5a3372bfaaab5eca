"""The bytes one step moves, counted operator by operator: what a decode step really reads and writes.

`count_traffic(step)` runs ``step()`` once under a ``TorchDispatchMode`` (the mechanism of torch's
``FlopCounterMode`` and of `opcount`) and charges every ATen operator call with the bytes it must read and
write if it streams each operand once: its tensor inputs read once, its outputs written once. That is the
roofline model's accounting for one kernel per operator (Williams, Waterman and Patterson, *Roofline*, CACM
2009): it leaves out a kernel that re-reads tiles that do not fit in cache (more traffic) and data that stays
in cache from one operator to the next, or operators that ``torch.compile`` fuses (less). It is a measurement
of what the step asks of memory, not of what the DRAM counters see.

The rules, per call:

- **aliases move nothing**: an output that shares storage with an input is not charged, so neither is a view
  (``view``, ``expand``, ``transpose``, ``slice``) nor a ``to`` or ``reshape`` that returns its input; a
  ``reshape`` that has to copy (an expanded tensor: ``repeat_kv``) is;
- **a tensor's bytes are the memory it spans**: an expanded (stride-0) dimension is read once, so a broadcast
  mask or an ``expand`` before ``reshape`` costs its source, not its logical size;
- **in place** (``add_``, ``mul_``): the mutated operand is read and written; ``zero_``/``fill_`` only write it,
  ``copy_`` reads the source and writes the destination;
- **indexed writes** (``index_copy_``, ``index_put_``, ``scatter_``, ``slice_scatter`` in place ...): only the
  written slice is charged (the bytes of the source/values), not the whole destination: a static KV cache's
  ``index_copy_`` writes one position, it does not rewrite the cache;
- **lookups** (``embedding``, ``index_select``, ``gather``, ``index``): the rows read are the output's bytes,
  plus the indices; an embedding table is not read whole;
- **allocations** (``empty``, ``empty_strided``, ``new_empty``) move nothing.

`Traffic` keeps the totals and the bytes per operator name, and `by_operator` sorts them, so a report can say
which operators move the bytes (``aten.cat``: the dynamic cache's copies).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

INDEXED_WRITES = {"aten.index_copy_", "aten.index_put_", "aten._index_put_impl_", "aten.scatter_",
                  "aten.scatter_add_", "aten.index_add_", "aten.index_fill_", "aten.masked_scatter_"}
SOURCE_ARGS = ("source", "values", "src", "value")   # the argument of an indexed write that holds the new data
LOOKUPS = {"aten.embedding", "aten.index_select", "aten.gather", "aten.index", "aten.take_along_dim"}
WRITE_ONLY = {"aten.zero_", "aten.fill_", "aten.normal_", "aten.uniform_", "aten.random_"}
ALLOCATIONS = {"aten.empty", "aten.empty_strided", "aten.new_empty", "aten.new_empty_strided", "aten.empty_like"}


def span_bytes(t) -> int:
    """Bytes of memory a strided tensor spans, counting a broadcast (stride-0) dimension once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if size == 0:
            return 0
        if stride != 0:
            n *= size
    return n * t.element_size()


@dataclass
class Traffic:
    """Bytes read and written by one step, in total and per ATen operator (its overload packet's name)."""

    read_bytes: int = 0
    written_bytes: int = 0
    calls: int = 0
    read_by_op: Counter = field(default_factory=Counter)
    written_by_op: Counter = field(default_factory=Counter)
    read_by_group: Counter = field(default_factory=Counter)   # bytes read from each named group's storage

    @property
    def total_bytes(self) -> int:
        return self.read_bytes + self.written_bytes

    def add(self, op: str, read: int, written: int) -> None:
        self.calls += 1
        self.read_bytes += read
        self.written_bytes += written
        if read:
            self.read_by_op[op] += read
        if written:
            self.written_by_op[op] += written

    def by_operator(self) -> list[tuple[str, int, int]]:
        """(operator, bytes read, bytes written), the largest total first."""
        ops = set(self.read_by_op) | set(self.written_by_op)
        rows = [(op, self.read_by_op[op], self.written_by_op[op]) for op in ops]
        return sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0]))


def _tensors(value) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _storage(t) -> int:
    """The identity of a tensor's storage (its StorageImpl; not its data pointer, which is 0 on the meta device)."""
    return t.untyped_storage()._cdata


def _named_args(func, args, kwargs) -> list[tuple[str, bool, bool, object]]:
    """(argument name, whether the operator writes it, whether it is keyword-only, value) for every argument
    passed; a written keyword-only argument is an ``out=`` buffer."""
    schema = func._schema.arguments
    by_name = {a.name: a for a in schema}
    pairs = [*zip(schema, args), *((by_name.get(name), value) for name, value in kwargs.items())]
    return [(arg.name if arg is not None else "", bool(arg is not None and arg.alias_info and arg.alias_info.is_write),
             bool(arg is not None and arg.kwarg_only), value) for arg, value in pairs]


def charge(func, args, kwargs, result, groups: dict[int, str] | None = None,
           by_group: Counter | None = None) -> tuple[int, int]:
    """(bytes read, bytes written) of one operator call, by the rules of the module docstring; with ``groups``
    ({storage address: group name}) the bytes read from each group's storage are added to ``by_group``."""
    read, written, reads = _charge(func, args, kwargs, result)
    if groups and by_group is not None:
        for t, n in reads:
            if (name := groups.get(_storage(t))) is not None:
                by_group[name] += n
    return read, written


def _charge(func, args, kwargs, result) -> tuple[int, int, list]:
    op = str(func.overloadpacket)
    if op in ALLOCATIONS:  # (not ``func.is_view``: ``reshape`` is declared as one and copies when it must)
        return 0, 0, []
    named = _named_args(func, args, kwargs or {})
    mutated = [t for _, w, _, v in named if w for t in _tensors(v)]
    updated = [t for _, w, kw, v in named if w and not kw for t in _tensors(v)]   # in place, not out=
    inputs = [t for _, w, _, v in named if not w for t in _tensors(v)]
    storages = {_storage(t) for t in inputs + mutated}
    fresh = [t for t in _tensors(result) if _storage(t) not in storages]
    if not mutated and not fresh:   # returned an input (or a view of one): nothing moved
        return 0, 0, []
    if op in INDEXED_WRITES:
        reads = [(t, span_bytes(t)) for t in inputs]
        written = sum(span_bytes(t) for n, w, _, v in named if not w and n in SOURCE_ARGS for t in _tensors(v))
    elif op in LOOKUPS:
        written = sum(span_bytes(t) for t in fresh)
        indices = [(t, span_bytes(t)) for t in inputs if not t.is_floating_point()]
        tables = [t for t in inputs if t.is_floating_point()]
        reads = indices + ([(tables[0], written)] if tables else [])   # the rows looked up
    else:
        written = sum(span_bytes(t) for t in mutated) + sum(span_bytes(t) for t in fresh)
        reads = [(t, span_bytes(t)) for t in inputs]
        if op not in WRITE_ONLY and op != "aten.copy_":
            reads += [(t, span_bytes(t)) for t in updated]   # read-modify-write (add_, mul_)
    return sum(n for _, n in reads), written, reads


def count_traffic(step: Callable[[], object], sync: Callable[[], object] | None = None,
                  groups: dict[str, Iterable] | None = None) -> Traffic:
    """Run ``step()`` once and count the bytes its operators read and write (see the module docstring).

    ``groups``: {name: tensors} (``{"weights": model.parameters()}``); `Traffic.read_by_group` then holds the
    bytes read from each group's storage."""
    from torch.utils._python_dispatch import TorchDispatchMode

    traffic = Traffic()
    owner = {_storage(t): name for name, tensors in (groups or {}).items() for t in tensors}

    class _Meter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            read, written = charge(func, args, kwargs or {}, result, owner, traffic.read_by_group)
            traffic.add(str(func.overloadpacket), read, written)
            return result

    with _Meter():
        step()
        if sync is not None:
            sync()
    return traffic


CACHE_PATHS = ("dynamic", "static", "static-compiled")


def decode_step_traffic(built, batch_size: int, context_len: int, cache: str = "dynamic",
                        max_cache_len: int | None = None) -> Traffic:
    """The traffic of one decode step's forward of ``built`` (a `models.BuiltModel`) whose cache holds
    ``context_len`` positions (the step attends ``context_len + 1``), as `workloads` runs it (its greedy
    ``argmax`` over the logits, B x vocab elements read, is left out):

    - ``dynamic``: eager, `DynamicCache` (each layer's keys and values grow by ``torch.cat``);
    - ``static``: eager, `StaticCache` of ``max_cache_len`` positions (default ``context_len + 1``), written by
      ``index_copy_``; attention reads all ``max_cache_len`` positions, masked;
    - ``static-compiled``: the same step as ``torch.compile`` receives it (dynamo's graph, run operator by
      operator before inductor fuses anything). transformers then takes ``repeat_kv`` where eager decoding packs
      the query instead, because a mask is present and SDPA's GQA path needs none.

    Groups: ``weights`` (the model's parameters). Works on the meta device (shapes only, no data), which counts a
    full-size model at no cost: the counts depend on shapes alone.
    """
    import torch
    from transformers import DynamicCache, StaticCache

    if cache not in CACHE_PATHS:
        raise ValueError(f"cache must be one of {CACHE_PATHS}, got {cache!r}")
    model, kw = built.model, built.cache_kwarg
    device = next(model.parameters()).device
    compiled = cache == "static-compiled"
    if compiled and context_len < 2:
        raise ValueError("static-compiled needs context_len >= 2 (one step is traced before the counted one)")
    g = torch.Generator(device="cpu").manual_seed(0)
    # compiled: the prompt is one shorter, and the traced step fills the cache up to context_len
    prompt = torch.randint(0, built.shape.vocab_size, (batch_size, context_len - compiled), generator=g).to(device)
    tok = prompt[:, -1:].clone()
    kv = (StaticCache(config=model.config, max_cache_len=max_cache_len or context_len + 1) if cache != "dynamic"
          else DynamicCache(config=model.config))
    weights = {"weights": list(model.parameters())}
    with torch.inference_mode():
        model(input_ids=prompt, use_cache=True, logits_to_keep=1, **{kw: kv})
        if not compiled:
            return count_traffic(lambda: model(input_ids=tok, use_cache=True, **{kw: kv}), groups=weights)
        captured: list = []

        def keep(gm, example_inputs):   # a torch.compile backend that runs dynamo's graph as it is
            def run(*args):
                captured[:] = [gm, args]
                return gm(*args)
            return run

        torch._dynamo.reset()
        try:
            forward = torch.compile(model.forward, backend=keep, fullgraph=True)
            forward(input_ids=tok, use_cache=True, **{kw: kv})   # traced at context_len - 1; counted: the next step
            gm, args = captured
            return count_traffic(lambda: gm(*args), groups=weights)
        finally:
            torch._dynamo.reset()
