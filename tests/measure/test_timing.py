"""measure() with a deterministic fake clock: what is timed, when it stops, and its verdict."""

import json

import pytest
from pydantic import ValidationError

from llmecon.measure.timing import DEFAULT_KNOBS, measure
from llmecon.records.schema import Knobs, RoundBlock
from llmecon.stats import relative_ci_halfwidth


def K(**kw) -> Knobs:
    """Knobs with measure()'s old defaults for the ones a test leaves out."""
    return Knobs(**{"warmup_iters": 3, "min_iters": 10, "min_time_s": 1.0, "max_time_s": 30.0, **kw})


class FakeClock:
    """A clock that only moves when the fake workload runs: call i takes durations(i) seconds."""

    def __init__(self, durations):
        self.now = 0.0
        self.calls = 0
        self.durations = durations
        self.log = []

    def __call__(self):
        return self.now

    def fn(self):
        self.now += self.durations(self.calls)
        self.calls += 1
        self.log.append("fn")

    def sync(self):
        self.log.append("sync")


def compile_then_steady(i, slow=1.25, steady=0.125):
    """First 3 calls 10x slower (compilation), then steady. Binary-exact numbers: sums are exact."""
    return slow if i < 3 else steady


def test_timing_warmup_and_cold_call_stay_out_of_samples():
    clock = FakeClock(compile_then_steady)
    m = measure(clock.fn, K(warmup_iters=2, min_iters=10, min_time_s=2.0), sync=clock.sync, clock=clock)
    assert m.first_call_s == 1.25
    assert m.warmup_iters == 2
    assert m.n_samples == 16  # 10 iterations reached first; 2 s needs 16 x 0.125 s
    assert set(m.samples_s) == {0.125}
    assert m.median_s == 0.125 and m.iqr_s == 0.0
    assert m.validity.valid and m.validity.reasons == () and m.validity.warnings == ()
    assert m.total_s == pytest.approx(2.0)


def test_timing_too_little_warmup_shows_as_noise_not_silence():
    clock = FakeClock(compile_then_steady)  # third slow call lands in the samples
    m = measure(clock.fn, K(warmup_iters=1, min_iters=3, min_time_s=0.0), sync=clock.sync, clock=clock)
    assert m.samples_s == (1.25, 0.125, 0.125)
    assert "very_noisy" in m.validity.warnings


def test_timing_sync_before_start_and_after_every_call():
    clock = FakeClock(lambda i: 1.0)
    measure(clock.fn, K(warmup_iters=2, min_iters=3, min_time_s=0.0), sync=clock.sync, clock=clock)
    assert clock.log[0] == "sync"
    assert clock.log[1:] == ["fn", "sync"] * 6  # cold + 2 warm-up + 3 timed


def test_timing_iteration_cap_makes_it_invalid_with_reasons():
    clock = FakeClock(compile_then_steady)
    m = measure(clock.fn, K(warmup_iters=3, min_iters=10, min_time_s=2.0, max_iters=4), clock=clock)
    assert m.n_samples == 4
    assert not m.validity.valid
    assert m.validity.reasons == ("min_iterations_not_met", "min_duration_not_met")
    assert m.median_s == 0.125  # statistics are still reported, marked invalid


def test_timing_time_cap_makes_it_invalid():
    clock = FakeClock(lambda i: 1.0)
    m = measure(clock.fn, K(warmup_iters=0, min_iters=3, min_time_s=100.0, max_time_s=7.0), clock=clock)
    assert m.n_samples == 7 and m.stop == "max_time" and m.cap_s == 7.0
    assert m.validity.reasons == ("min_duration_not_met",)


def test_timing_cap_scales_with_the_step_so_a_slow_step_reaches_its_minimum_count():
    """A 0.8 s step, 10 samples required, a 5 s cap: the window's cap grows to 2 x 10 warm steps (16 s)."""
    clock = FakeClock(lambda i: 0.8)
    m = measure(clock.fn, K(warmup_iters=2, min_iters=10, min_time_s=0.0, max_time_s=5.0), clock=clock)
    assert m.cap_s == pytest.approx(16.0) and m.n_samples == 10 and m.stop == "minimums"
    assert m.validity.valid


def _jittery(i, step=0.125, spread=0.25):
    """Deterministic alternating jitter around ``step``: relative spread +-spread/2."""
    return step * (1 + spread * (0.5 - (i * 7919 % 11) / 10))


def test_timing_stops_when_the_median_is_precise_enough():
    loose = FakeClock(_jittery)
    m = measure(loose.fn, K(warmup_iters=1, min_iters=10, min_time_s=0.0, target_rel_ci=0.2), clock=loose)
    assert m.stop == "precision" and m.n_samples == 10 and m.validity.valid
    assert m.ci_low_s <= m.median_s <= m.ci_high_s
    tight = FakeClock(_jittery)
    m2 = measure(tight.fn, K(warmup_iters=1, min_iters=10, min_time_s=0.0, target_rel_ci=0.03), clock=tight)
    assert m2.stop == "precision" and m2.n_samples > m.n_samples
    assert relative_ci_halfwidth(m2.samples_s) <= 0.03 < relative_ci_halfwidth(m2.samples_s[:10])


def test_timing_cap_before_the_precision_target_is_valid_but_imprecise():
    clock = FakeClock(_jittery)
    m = measure(clock.fn, K(warmup_iters=0, min_iters=10, min_time_s=0.0, max_time_s=3.0, target_rel_ci=1e-6),
                clock=clock)
    assert m.stop == "max_time" and m.validity.valid and "imprecise" in m.validity.warnings


def test_timing_round_block_is_a_valid_record_round():
    clock = FakeClock(_jittery)
    m = measure(clock.fn, K(warmup_iters=1, min_iters=10, min_time_s=0.0, target_rel_ci=0.05), clock=clock)
    block = RoundBlock.model_validate(json.loads(json.dumps(m.to_dict(), allow_nan=False)))
    assert block.stop == "precision" and block.n_samples == len(block.samples_s) and block.cap_s == 30.0


def test_timing_single_sample_has_no_spread():
    clock = FakeClock(lambda i: 0.5)
    m = measure(clock.fn, K(warmup_iters=0, min_iters=1, min_time_s=0.0), clock=clock)
    assert m.n_samples == 1
    assert m.iqr_s is None and m.ci_low_s is None
    assert m.validity.valid and m.validity.warnings == ("single_sample",)


def test_timing_min_time_counts_timed_calls_not_hook_overhead():
    clock = FakeClock(lambda i: 0.125)
    started, seen = [], []

    def on_sample(index, seconds):
        seen.append((index, seconds))
        clock.now += 10.0  # a slow telemetry read, outside the timed region

    m = measure(clock.fn, K(warmup_iters=1, min_iters=2, min_time_s=1.0, max_time_s=1000.0), clock=clock,
                on_start=lambda: started.append(clock.calls), on_sample=on_sample)
    assert started == [2]  # after the cold call and one warm-up call
    assert m.n_samples == 8 and seen == [(i, 0.125) for i in range(8)]
    assert m.total_s == pytest.approx(8 * 10.125)


def test_timing_clock_going_backwards_is_invalid():
    clock = FakeClock(lambda i: -0.5 if i == 2 else 1.0)
    m = measure(clock.fn, K(warmup_iters=0, min_iters=3, min_time_s=0.0), clock=clock)
    assert m.validity.reasons == ("non_positive_sample",)


def test_timing_bad_knobs_are_refused_naming_the_field():
    with pytest.raises(ValidationError, match="min_iters"):
        K(min_iters=0)
    with pytest.raises(ValidationError, match="max_time_s"):
        K(max_time_s=0)
    with pytest.raises(ValidationError, match="min_iters"):
        K(min_iters=2.5)


def test_timing_defaults_per_device_kind_are_written_once():
    assert DEFAULT_KNOBS["cpu"].min_time_s < DEFAULT_KNOBS["cuda"].min_time_s
    assert all(k.min_time_s <= k.max_time_s and k.rounds >= 3 and k.target_rel_ci for k in DEFAULT_KNOBS.values())


def test_timing_exceptions_propagate():
    def boom():
        raise MemoryError("planted")

    with pytest.raises(MemoryError):
        measure(boom, K())


def test_timing_real_clock_and_record_block():
    m = measure(lambda: sum(range(100)), K(warmup_iters=1, min_iters=5, min_time_s=0.0))
    block = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert block["n_samples"] == len(block["samples_s"]) >= 5
    assert block["validity"] == {"valid": True, "reasons": [], "warnings": block["validity"]["warnings"]}
    assert set(block) >= {"samples_s", "first_call_s", "warmup_iters", "n_samples", "total_s", "validity", "stop"}


def test_timing_self_timed_call_is_sampled_by_what_it_returns():
    """A self-timed call (generate's request) returns the seconds of the parts it timed: that is the sample, the
    cold call's and the warm-up's time, not the clock around the call (which also ran its bookkeeping)."""
    clock = FakeClock(lambda i: 0.5)   # every call spends 0.5 s of wall clock, 0.25 s of it in timed parts
    parts = []

    def request():
        clock.fn()
        parts.append(0.125 + 0.125)   # "TTFT" + one "step"
        return parts[-1]

    m = measure(request, K(warmup_iters=1, min_iters=4, min_time_s=1.0), sync=clock.sync, clock=clock,
                self_timed=True)
    assert m.first_call_s == 0.25 and set(m.samples_s) == {0.25}
    assert m.n_samples == 4 and m.total_s == pytest.approx(2.0)   # min_time counts the returned seconds
    wall = FakeClock(lambda i: 0.5)
    plain = measure(wall.fn, K(warmup_iters=1, min_iters=4, min_time_s=0.0), sync=wall.sync, clock=wall)
    assert plain.samples_s == (0.5,) * 4    # not self-timed: the clock around the call
