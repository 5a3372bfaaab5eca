"""The four workloads, each timed with `timing.measure`, each doing the work a real system does.

`run_workload` measures ONE round of one configuration (the worker interleaves the rounds of a model's
configurations and `rounds.combine` merges them into the record). With ``count_ops`` it also counts the
operator calls of one extra, untimed step (`opcount.count_ops`).

A "timed call" (one sample) is, per phase:

- **prefill**: one forward over batch x seq_len random tokens, no KV cache (`use_cache=False`), logits
  for the last position only (`logits_to_keep=1`, as `generate` does), under `inference_mode`.
- **decode**: ONE decode step: one new token per sequence, from a KV cache holding the prompt and the
  tokens decoded so far, greedy (argmax inside the step, as a server does), fixed length, no EOS.
  We run our own step loop over `model.forward` with a `DynamicCache` (or a `StaticCache` when
  `static_cache`), not `generate`, so that every step is timed on its own. Decode steps are not
  repeatable calls with identical state (the cache grows), so the protocol is:

    1. prefill the prompt (untimed for the samples; its cold time is kept as `prompt_prefill_s`);
    2. `measure()`'s cold call plus `new_tokens - 1` warm-up calls are one full decode pass over
       exactly the positions that will be timed (compiled static-cache decode on CUDA: whole passes of at
       least `CUDA_GRAPH_CALLS_BEFORE_REPLAY` calls, so that the CUDA graph is recorded before the window);
    3. right before the timed window (`on_start`) the cache is rebuilt and the prompt re-prefilled,
       untimed; every timed call is then one step at a known context position
       seq_len, seq_len+1, ..., seq_len+new_tokens-1; after the last position of a pass the
       `on_sample` hook re-prefills the prompt, untimed, and the next pass starts over.

  The samples are per-step times across those context positions (recorded beside them in
  `timing.context_positions`). Decode time is measured, never derived as a difference of two
  timings, so it cannot come out negative.
- **generate** (bench-only: calibrate never fits it): ONE batched request, as a server runs it, timed end to end.
  One timed call builds a fresh `DynamicCache`, prefills the batch x seq_len prompt with ``use_cache``
  (``logits_to_keep=1``), takes the greedy token (argmax) and synchronises: that span is the call's **time to
  first token** (TTFT). Then ``new_tokens - 1`` greedy decode steps, each ended by a synchronise (a server syncs
  every step to stream the tokens) and timed on its own: the **time per output token** (TPOT) samples. The
  steps are `_Decoder`'s (the same prefill and step code as the decode phase, dynamic cache, eager), so a request
  is the prefill and decode work those phases time. The call is self-timed (`timing.measure`'s ``self_timed``):
  its sample is the whole request, TTFT + the sum of its steps, exactly; the cold call and warm-up are whole
  requests too. Each round keeps, beside ``samples_s``, every timed call's TTFT (``ttft_samples_s``) and its
  steps (``tpot_samples_s``, call by call), all host clock; on CUDA the device clock (``device_samples_s``)
  brackets the whole call, as for the other phases. Work per call: batch x new_tokens generated tokens (the
  first, from the prefill, included); nothing is re-prefilled untimed, so nothing is paused in the window.
  With ``new_tokens`` = O the cache ends holding seq_len + O - 1 positions (checked, as decode does).
- **train**: forward + backward + AdamW step on random tokens, loss on every position. Master weights
  are fp32; bf16/fp16 runs use autocast (on a GPU the standard mixed-precision recipe; fp32 on CPU
  by default). Activation checkpointing recomputes the forward in the backward pass: the executed
  (hardware) FLOPs grow by about one forward, the model FLOPs (and so MFU) do not.

With ``compile``, each round compiles its step afresh in its cold call and reports what dynamo did
(`compiled.CompileWatch`: graph breaks, recompiles, compilation inside the timed window, an eager fallback).

Seeds are fixed (`torch.manual_seed`), so the same configuration builds the same weights and inputs.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from llmecon.measure.compiled import CompileWatch
from llmecon.measure.device import backend
from llmecon.measure.models import BuiltModel, enable_activation_checkpointing, torch_dtype
from llmecon.measure.timing import DEFAULT_KNOBS
from llmecon.measure.window import Window, measure_in_window, ops_of, telemetry_warnings
from llmecon.records.schema import Knobs
from llmecon.vocab import BENCH_PHASES, GENERATE

SEED = 0

# Test-only fault injection (read by the worker process; never set these outside tests). A value is a batch
# size N, or PHASE:N to hit that phase only:
#   LLMECON_FAULT_OOM_BATCH=N    raise torch.OutOfMemoryError in any configuration with batch >= N
#   LLMECON_FAULT_CUBLAS_BATCH=N raise cuBLAS's allocation failure (a RuntimeError) there instead
#   LLMECON_FAULT_CRASH_BATCH=N  kill the worker process (os._exit(86)) in the configuration with batch == N
#   LLMECON_FAULT_HANG_BATCH=N   sleep forever in the configuration with batch == N (tests timeouts, Ctrl-C)
#   LLMECON_FAULT_RANK=R         plant them on torchrun's rank R only (a distributed run; default every rank)
FAULT_ENV = ("LLMECON_FAULT_OOM_BATCH", "LLMECON_FAULT_CRASH_BATCH", "LLMECON_FAULT_HANG_BATCH",
             "LLMECON_FAULT_CUBLAS_BATCH")


def _fault(name: str, phase: str) -> int | None:
    value = os.environ.get(name, "")
    want, _, batch = value.rpartition(":")
    return int(batch) if batch.isdigit() and want in ("", phase) else None


def _planted_faults(phase: str, batch_size: int) -> None:
    import torch

    rank = os.environ.get("LLMECON_FAULT_RANK")
    if rank is not None and rank != os.environ.get("RANK"):
        return
    oom, crash, hang, cublas = (_fault(name, phase) for name in FAULT_ENV)
    if oom is not None and batch_size >= oom:
        raise (getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError)(
            f"planted by LLMECON_FAULT_OOM_BATCH={os.environ['LLMECON_FAULT_OOM_BATCH']} (test only)")
    if cublas is not None and batch_size >= cublas:  # the message torch's cuBLAS handle check prints
        raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)` "
                           "(planted by LLMECON_FAULT_CUBLAS_BATCH, test only)")
    if crash is not None and batch_size == crash:
        os._exit(86)
    if hang is not None and batch_size == hang:
        while True:
            time.sleep(3600)


def _tokens(vocab_size: int, batch_size: int, seq_len: int, device: str, seed: int):
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(0, vocab_size, (batch_size, seq_len), generator=g).to(device)


def run_workload(built: BuiltModel, phase: str, *, batch_size: int, seq_len: int, new_tokens: int, dtype: str,
                 device: str, compile: bool = False, static_cache: bool = False,
                 activation_checkpointing: bool = False, knobs: Knobs | None = None,
                 count_ops: bool = False) -> dict:
    """Measure one round of one configuration: {"round": the record's round block, "timing_extra": the
    phase's fields of the timing block, "telemetry", "memory", "ops" (None unless ``count_ops``),
    "tokens_per_step"}.

    ``knobs``: how to time it (default: the device kind's, timing.DEFAULT_KNOBS; ``rounds`` is the worker's
    business). Exceptions (an OOM, say) propagate: the worker turns them into a status.
    """
    import torch

    if phase not in BENCH_PHASES:
        raise ValueError(f"unknown phase {phase!r}")
    be = backend(device)
    knobs = knobs or DEFAULT_KNOBS[be.kind]
    torch.manual_seed(SEED)
    _planted_faults(phase, batch_size)
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    torch.backends.cudnn.allow_tf32 = dtype == "tf32"
    be.reset_memory()  # the allocator's cache emptied before the peak is reset: no blocks of an earlier config
    watch = CompileWatch() if compile else None  # a fresh compile each round (measure/compiled.py)
    if phase == "prefill":
        out = _prefill(built, be, batch_size, seq_len, watch, knobs, count_ops)
    elif phase == "decode":
        out = _decode(built, be, batch_size, seq_len, new_tokens, watch, static_cache, knobs, count_ops)
    elif phase == GENERATE:
        if watch is not None or static_cache:
            raise ValueError("generate runs eager with a dynamic cache (no compile, no static cache)")
        out = _generate(built, be, batch_size, seq_len, new_tokens, knobs, count_ops)
    else:
        out = _train(built, be, batch_size, seq_len, dtype, watch, activation_checkpointing, knobs, count_ops)
    if watch is not None:
        reasons, warnings = watch.findings()
        out["round"]["validity"]["reasons"] += reasons
        out["round"]["validity"]["warnings"] += warnings
        out["round"]["validity"]["valid"] = out["round"]["validity"]["valid"] and not reasons
    telemetry_warnings(out, be.kind)
    return out


def _prefill(built, be, batch_size, seq_len, watch, knobs, count) -> dict:
    import torch

    model = built.model
    ids = _tokens(built.shape.vocab_size, batch_size, seq_len, be.torch_device, SEED)
    forward = watch.compile(model) if watch else model

    def step():
        return forward(input_ids=ids, use_cache=False, logits_to_keep=1)

    with torch.inference_mode():
        m, tele, memory = measure_in_window(step, be, knobs, batch_size * seq_len, Window(be),
                                             on_start=watch.window_start if watch else None)
        ops = ops_of(step, be, watch is not None, count)
    return {"round": m.to_dict(), "timing_extra": {}, "telemetry": tele, "memory": memory, "ops": ops,
            "tokens_per_step": batch_size * seq_len}


# Calls a reduce-overhead step needs before it replays a CUDA graph: the first runs the compiled code eagerly
# (CUDA-graph trees' warm-up), the second records the graph, the third replays it (torch/_inductor/
# cudagraph_trees.py; https://pytorch.org/docs/stable/torch.compiler_cudagraph_trees.html).
CUDA_GRAPH_CALLS_BEFORE_REPLAY = 3


def decode_compile_mode(kind: str, static_cache: bool) -> str | None:
    """torch.compile's mode for a compiled decode step: ``reduce-overhead`` (CUDA graphs) for a static cache on
    CUDA, whose shapes and addresses stay fixed from step to step; the default otherwise."""
    return "reduce-overhead" if static_cache and kind == "cuda" else None


class _Decoder:
    """Greedy decode over a KV cache, one step per call, positions seq_len .. seq_len+new_tokens-1.

    Compiled (``watch``): ``model.forward`` goes through torch.compile, the untimed prompt prefill stays eager;
    with a static cache on CUDA in ``reduce-overhead`` mode (CUDA graphs), as transformers' "Static cache and
    torch.compile" guide and gpt-fast do (docs/measuring.md "Compiled decode")."""

    def __init__(self, built: BuiltModel, batch_size, seq_len, new_tokens, be, watch, static_cache):
        self.built, self.model = built, built.model
        self.seq_len, self.new_tokens = seq_len, new_tokens
        self.device, self.static_cache = be.torch_device, static_cache
        self.prompt = _tokens(built.shape.vocab_size, batch_size, seq_len, be.torch_device, SEED)
        self.cache = None
        self.tok = None
        self.i = 0
        self.timing = False  # set when the timed window starts: from then on a step past the last position is a bug
        self.sync = be.synchronize
        self.watch = watch
        mode = decode_compile_mode(be.kind, static_cache) if watch is not None else None
        self.cuda_graphs = mode == "reduce-overhead"
        self.forward = watch.compile(self.model.forward, mode=mode) if watch is not None else self.model.forward

    def _new_cache(self):
        from transformers import DynamicCache, StaticCache

        if self.static_cache:
            if self.cache is None:
                self.cache = StaticCache(config=self.model.config, max_cache_len=self.seq_len + self.new_tokens)
            else:
                self.cache.reset()
        else:
            self.cache = DynamicCache(config=self.model.config)

    def prefill(self) -> None:
        """Fill the cache with the prompt and take its greedy token; untimed, ends synchronised."""
        self._new_cache()
        out = self.model(input_ids=self.prompt, use_cache=True, logits_to_keep=1, **{self.built.cache_kwarg: self.cache})
        self.tok = out.logits[:, -1:].argmax(-1)
        self.i = 0
        self.sync()

    def window_start(self) -> None:
        """The timed window starts: a fresh prompt, and the compile watch's mark."""
        self.prefill()
        self.timing = True
        if self.watch is not None:
            self.watch.window_start()

    def step(self):
        if self.i >= self.new_tokens:
            if self.timing:
                raise RuntimeError("decode step beyond the planned positions (a bug in the pass bookkeeping)")
            self.prefill()  # a warm-up longer than one pass (CUDA graphs) starts a new pass, untimed
        out = self.forward(input_ids=self.tok, use_cache=True, **{self.built.cache_kwarg: self.cache})
        self.tok = out.logits[:, -1:].argmax(-1)
        self.i += 1

    def cache_length(self) -> int:
        return int(self.cache.get_seq_length())


def _decode(built, be, batch_size, seq_len, new_tokens, watch, static_cache, knobs, count) -> dict:
    import torch

    dec = _Decoder(built, batch_size, seq_len, new_tokens, be, watch, static_cache)
    window = Window(be)
    positions: list[int] = []
    # cold call + (new_tokens - 1) warm-up calls = one full pass over the timed positions (whole passes, at least
    # the calls CUDA graphs need before they replay); the minimum count rounded up to whole passes
    passes = math.ceil(CUDA_GRAPH_CALLS_BEFORE_REPLAY / new_tokens) if dec.cuda_graphs else 1
    knobs = knobs.model_copy(update={"warmup_iters": passes * new_tokens - 1,
                                     "min_iters": max(1, math.ceil(knobs.min_iters / new_tokens)) * new_tokens})

    def on_sample(index, seconds):
        positions.append(seq_len + dec.i - 1)
        if dec.i == new_tokens:  # the next pass needs a fresh prompt: untimed, and out of energy and peak memory
            window.pause()
            dec.prefill()
            window.resume()

    with torch.inference_mode():
        t0 = time.perf_counter()
        dec.prefill()
        prompt_prefill_s = time.perf_counter() - t0
        m, tele, memory = measure_in_window(dec.step, be, knobs, batch_size, window, on_start=dec.window_start,
                                             on_sample=on_sample)
        final_cache_len = dec.cache_length()
        expected = seq_len + dec.i
        if count:  # one step at the first timed position, after the round
            dec.prefill()
        ops = ops_of(dec.step, be, watch is not None, count)
    rnd = m.to_dict()
    rnd["context_positions"] = positions
    extra = {"prompt_prefill_s": prompt_prefill_s, "cache": "static" if static_cache else "dynamic",
             "protocol": "per-step samples; warm-up = one full untimed pass; prompt re-prefilled (untimed, and "
                         "left out of energy and peak memory) before each pass"}
    if final_cache_len != expected:  # the cache must hold exactly the prompt plus the steps taken
        rnd["validity"]["valid"] = False
        rnd["validity"]["reasons"].append(f"cache_length_mismatch:{final_cache_len}!={expected}")
    return {"round": rnd, "timing_extra": extra, "telemetry": tele, "memory": memory, "ops": ops,
            "tokens_per_step": batch_size}


GENERATE_PROTOCOL = ("one timed call = one batched request: fresh DynamicCache, prompt prefill + greedy token + "
                     "synchronise (TTFT), then new_tokens - 1 greedy decode steps each ended by a synchronise "
                     "(TPOT samples); sample = TTFT + the sum of the steps (host clock)")


def _generate(built, be, batch_size, seq_len, new_tokens, knobs, count) -> dict:
    import torch

    if new_tokens < 2:
        raise ValueError(f"generate needs new_tokens >= 2 (a first token and at least one decode step), got {new_tokens}")
    dec = _Decoder(built, batch_size, seq_len, new_tokens - 1, be, None, False)
    clock = time.perf_counter
    last: dict = {}
    ttft_samples: list[float] = []
    tpot_samples: list[float] = []
    cache_lengths: list[int] = []

    def request() -> float:
        t0 = clock()
        dec.prefill()  # a fresh DynamicCache, the prompt's forward, the greedy token; ends synchronised
        ttft = clock() - t0
        steps = []
        for _ in range(new_tokens - 1):
            t = clock()
            dec.step()
            dec.sync()
            steps.append(clock() - t)
        last.update(ttft=ttft, steps=steps, cache=dec.cache_length())
        return ttft + sum(steps)

    def on_sample(index, seconds):
        ttft_samples.append(last["ttft"])
        tpot_samples.extend(last["steps"])
        cache_lengths.append(last["cache"])

    tokens = batch_size * new_tokens
    with torch.inference_mode():
        m, tele, memory = measure_in_window(request, be, knobs, tokens, Window(be), on_sample=on_sample,
                                             self_timed=True)
        ops = ops_of(request, be, False, count)
    rnd = m.to_dict()
    rnd["ttft_samples_s"] = ttft_samples
    rnd["tpot_samples_s"] = tpot_samples
    expected = seq_len + new_tokens - 1
    wrong = sorted({n for n in cache_lengths if n != expected})
    if wrong:  # every request's cache must hold exactly the prompt plus its decode steps
        rnd["validity"]["valid"] = False
        rnd["validity"]["reasons"].append(f"cache_length_mismatch:{wrong[0]}!={expected}")
    extra = {"cache": "dynamic", "protocol": GENERATE_PROTOCOL}
    return {"round": rnd, "timing_extra": extra, "telemetry": tele, "memory": memory, "ops": ops,
            "tokens_per_step": tokens}


def _train(built, be, batch_size, seq_len, dtype, watch, activation_checkpointing, knobs, count) -> dict:
    import torch

    model = built.model
    model.train()
    if activation_checkpointing:
        enable_activation_checkpointing(model)
    runner = built.module or model  # DDP's wrapper when data-parallel (measure.distributed.wrap)
    ids = _tokens(built.shape.vocab_size, batch_size, seq_len, be.torch_device, SEED)
    kind = torch.device(be.torch_device).type  # autocast and the grad scaler follow where the tensors live
    half = dtype in ("bf16", "fp16")
    amp_dtype = torch_dtype(dtype)
    opt_kwargs: dict[str, Any] = {"lr": 1e-4}
    if be.supports_fused_adamw():
        opt_kwargs["fused"] = True
    optimizer = torch.optim.AdamW(runner.parameters(), **opt_kwargs)
    scaler = torch.amp.GradScaler(kind) if dtype == "fp16" else None
    forward = watch.compile(runner) if watch else runner
    last = [None]

    def step():
        with torch.autocast(device_type=kind, dtype=amp_dtype, enabled=half):
            loss = forward(input_ids=ids, labels=ids, use_cache=False).loss
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        last[0] = loss

    m, tele, memory = measure_in_window(step, be, knobs, batch_size * seq_len, Window(be),
                                         on_start=watch.window_start if watch else None)
    loss = float(last[0].detach().float().cpu())
    ops = ops_of(step, be, watch is not None, count)
    rnd = m.to_dict()
    extra = {"master_dtype": "fp32", "autocast_dtype": dtype if half else None, "final_loss": loss}
    if not math.isfinite(loss):
        rnd["validity"]["valid"] = False
        rnd["validity"]["reasons"].append("non_finite_loss")
    optimizer = None  # free its state before the next configuration (step() above holds the name)
    return {"round": rnd, "timing_extra": extra, "telemetry": tele, "memory": memory, "ops": ops,
            "tokens_per_step": batch_size * seq_len}
