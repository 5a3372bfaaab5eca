"""The steady state of continuous batching, by hand: requests/s, TPOT, TTFT, the cost split, the KV cache."""

from __future__ import annotations

import pytest

from llmecon.costmodel import serving as sv
from llmecon.costmodel.lengths import fixed, read_lengths
from llmecon.errors import UserError


def test_steady_state_by_hand():
    # C = 8 requests, a 20 ms prefill each, 10 ms decode steps, 101 output tokens (100 steps), 500 prompt tokens:
    # one request costs 20 ms + 100 x 10 ms / 8 = 145 ms of the accelerator
    s = sv.steady_state(0.020, 0.010, 8, 500, 101)
    assert s["requests_per_s"] == pytest.approx(8 / (8 * 0.020 + 100 * 0.010)) == pytest.approx(1 / 0.145)
    assert s["tpot_s"] == pytest.approx(0.010 + 8 * 0.020 / 100)      # each step waits for 8/100 of a prefill
    assert s["ttft_mean_s"] == pytest.approx(0.020 + 0.005)
    assert s["output_tokens_per_s"] == pytest.approx(101 / 0.145) and s["input_tokens_per_s"] == pytest.approx(500 / 0.145)
    cost = sv.serving_cost(s, 3.6, 500, 101)   # $3.60/hour = $0.001/s
    assert cost["usd_per_request"] == pytest.approx(0.145e-3)
    assert cost["usd_per_1m_input_tokens"] == pytest.approx(0.020e-3 / 500 * 1e6)
    assert cost["usd_per_1m_output_tokens"] == pytest.approx(0.125e-3 / 101 * 1e6)


def test_kv_cache_and_the_concurrency_that_fits():
    assert sv.kv_cache_bytes(1000.0, 4, 600) == 2.4e6
    assert sv.max_concurrency(10e6, 4e6, 1000.0, 600) == 10          # (10 - 4) MB / 600 kB
    assert sv.max_concurrency(3e6, 4e6, 1000.0, 600) == 0


@pytest.mark.parametrize("args,message", [((0.0, 0.01, 1, 10, 10), "prefill time must be > 0"),
                                          ((0.01, 0.01, 0, 10, 10), "concurrency must be > 0"),
                                          ((0.01, 0.01, 1, 10, 1), "more than 1")])
def test_steady_state_refuses_what_has_no_steady_state(args, message):
    with pytest.raises(UserError, match=message):
        sv.steady_state(*args)


def test_lengths_file_means_and_decode_context(tmp_path):
    path = tmp_path / "req.csv"
    path.write_text("prompt_tokens,output_tokens,count\n100,11,3\n1000,1,1\n")
    got = read_lengths(path)
    assert got.n_requests == 4 and got.mean_prompt == 325 and got.mean_output == 8.5
    assert got.decode_context() == pytest.approx(105.5)   # only the 11-token requests decode: P + O/2
    assert fixed(512, 128).decode_context() == 576


@pytest.mark.parametrize("text,where", [
    ("prompt_tokens,output_tokens\n100,-5\n", "line 2, field .output_tokens.: must be >= 1, got -5"),
    ("prompt_tokens,output_tokens\n100,x\n", "line 2, field 'output_tokens': 'x' is not a whole number"),
    ("prompt,output_tokens\n100,5\n", "field 'prompt_tokens': missing column"),
    ("prompt_tokens,output_tokens\n100,1\n", "a mean of at least 2"),
])
def test_lengths_file_errors_name_file_line_and_field(tmp_path, text, where):
    path = tmp_path / "req.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=where):
        read_lengths(path)
