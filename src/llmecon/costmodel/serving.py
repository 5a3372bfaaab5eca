"""Steady-state continuous batching: what one accelerator serving C requests at a time delivers, from the time of
one prefill and of one decode step. The formulas of `llmecon plan serve` (estimate/serving.py predicts the two times
and searches the concurrency); docs/serving.md says the same in prose, with its limits.

The server (iteration-level scheduling, Yu et al., "Orca", OSDI 2022,
https://www.usenix.org/conference/osdi22/presentation/yu; as vLLM and TGI run it):
- holds C requests in flight, a closed loop: when one finishes the next starts (the load `vllm bench serve
  --max-concurrency C` offers). There is no queue, so latency here is the server's, not a backlog's.
- gives each request one prefill of its P prompt tokens, run on its own between decode steps (prefill-first
  scheduling, vLLM's default without chunked prefill). It takes t_p and yields the request's first token.
- then advances every request in flight by one token per decode step, at batch C. A step takes t_d at the mean
  context the steps attend. A request needs O − 1 steps after its first token.

Over a window T with n_p prefills and n_d decode steps, T = n_p·t_p + n_d·t_d; each request takes one prefill,
and each step serves C requests, so n_p = λT and C·n_d = λT·(O − 1). Hence:

    λ     = C / (C·t_p + (O − 1)·t_d)          requests per second
    TPOT  = T / n_d = t_d + C·t_p / (O − 1)    a request's mean time between output tokens: the prefills of
                                                the others stall its batch (Agrawal et al. 2024, "Sarathi-Serve",
                                                arXiv:2403.02310, call these generation stalls)
    TTFT  = t_p + t_d / 2                      its prefill, after the step in progress (the mean residual)

With lengths that vary from request to request, t_p, P and O − 1 are the means over the requests. TTFT is then
per request, so the plan gives its mean and its 90th percentile. The accelerator-seconds of a request, 1/λ =
t_p + (O − 1)·t_d / C, are charged to its tokens by where they go: the prefill to its input tokens, the decode
share to its output tokens.
"""

from __future__ import annotations

from llmecon.errors import UserError, require_count, require_positive

SECONDS_PER_HOUR = 3600.0


def steady_state(prefill_s: float, decode_step_s: float, concurrency: int, prompt_tokens: float,
                 output_tokens: float) -> dict[str, float]:
    """Requests/s, TPOT, mean TTFT, and tokens/s of one accelerator at ``concurrency`` requests in flight.

    ``prefill_s`` is the mean time of one request's prefill, and ``decode_step_s`` the time of one decode step at
    batch ``concurrency``. ``prompt_tokens`` and ``output_tokens`` are the means per request; output_tokens must
    exceed 1, since the first token comes from the prefill.
    """
    t_p = require_positive("prefill time", prefill_s)
    t_d = require_positive("decode step time", decode_step_s)
    c = require_count("concurrency", concurrency)
    o = require_positive("output tokens", output_tokens)
    p = require_positive("prompt tokens", prompt_tokens)
    if o <= 1:
        raise UserError("output tokens must be more than 1: the first comes from the prefill, the rest from "
                        "decode steps")
    steps = o - 1
    rate = c / (c * t_p + steps * t_d)
    return {"requests_per_s": rate, "tpot_s": t_d + c * t_p / steps, "ttft_mean_s": t_p + t_d / 2,
            "output_tokens_per_s": rate * o, "input_tokens_per_s": rate * p,
            "accelerator_s_per_request": 1.0 / rate, "prefill_s_per_request": t_p,
            "decode_s_per_request": steps * t_d / c}


def serving_cost(state: dict[str, float], usd_per_accelerator_hour: float, prompt_tokens: float,
                 output_tokens: float) -> dict[str, float]:
    """$ per request, $ per 1M input tokens (their prefill) and $ per 1M output tokens (the decode share)."""
    usd_per_s = require_positive("usd per accelerator-hour", usd_per_accelerator_hour) / SECONDS_PER_HOUR
    return {"usd_per_request": state["accelerator_s_per_request"] * usd_per_s,
            "usd_per_1m_input_tokens": state["prefill_s_per_request"] * usd_per_s / prompt_tokens * 1e6,
            "usd_per_1m_output_tokens": state["decode_s_per_request"] * usd_per_s / output_tokens * 1e6}


def kv_cache_bytes(kv_bytes_per_token: float, concurrency: int, tokens_per_request: float) -> float:
    """The KV cache C requests hold when each reaches its full prompt + output length (what a server must be able
    to hold; vLLM pre-empts a request when its blocks run out)."""
    return require_positive("KV bytes per token", kv_bytes_per_token) * require_count("concurrency", concurrency) \
        * require_positive("tokens per request", tokens_per_request)


def max_concurrency(usable_bytes: float, weight_bytes: float, kv_bytes_per_token: float,
                    tokens_per_request: float) -> int:
    """The most requests whose full KV caches fit beside the weights in ``usable_bytes`` (0 when none)."""
    free = float(usable_bytes) - float(weight_bytes)
    per_request = require_positive("KV bytes per token", kv_bytes_per_token) * require_positive(
        "tokens per request", tokens_per_request)
    return max(0, int(free // per_request))
