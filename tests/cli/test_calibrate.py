"""`llmecon calibrate` on runs written to disk (planted and real), and the calibration used by
`llmecon estimate ... --calibration` and `llmecon article --calibration`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmecon.calibration.document import Calibration
from llmecon.cli import main
from llmecon.estimate.inference import estimate_inference
from llmecon.vocab import REGIMES


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def planted(tmp_path_factory, plant):
    """A planted run on disk (η_c 0.4, η_m 0.7, t0 2 ms against 1 TFLOP/s, 100 GB/s ceilings), calibrated."""
    root = tmp_path_factory.mktemp("planted")
    run = plant.planted_run(root / "runs", dtype="fp32", phases=("prefill", "decode", "train"), batches=(1, 8, 32),
                            seqs=(128, 2048), jitter=0.01)
    result = _invoke("calibrate", run, "-o", root / "calibration.json")
    assert result.exit_code == 0, result.output
    return {"run": run, "path": root / "calibration.json", "output": result.output}


def test_calibrate_prints_the_fit_and_its_held_out_error(planted):
    out = planted["output"]
    assert "Held-out error" in out and f"wrote {planted['path']}" in out
    assert "held-out error (median / max): Synthetic CPU fp32 decode" in out
    assert "│ Synthetic CPU │ fp32  │ decode" in out       # the table is not cropped to 80 columns in a pipe
    calib = Calibration.load(planted["path"])
    decode = next(f for f in calib.fits if f.phase == "decode")
    assert decode.eta_compute == pytest.approx(0.4, rel=0.03)
    assert decode.eta_memory == pytest.approx(0.7, rel=0.03)
    # 1 % jitter on the samples: a working fit predicts held-out shapes within a few percent
    for f in calib.fits:
        assert f.heldout.median_rel_error < 0.02 and f.heldout.max_rel_error < 0.05, f.key
    # the run's run.json reaches the calibration's provenance
    assert calib.provenance.run_ids == [planted["run"].name]
    assert calib.provenance.environments[planted["run"].name]["python"] == "3.11"
    as_json = _invoke("calibrate", planted["run"], "-o", planted["path"].with_name("again.json"), "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["flop_convention"] == "executed"


def test_calibrate_refuses_too_few_shapes_and_bad_input(tmp_path, plant):
    run = plant.planted_run(tmp_path / "runs", dtype="fp32", phases=("decode",), batches=(1, 2), seqs=(32,))
    result = _invoke("calibrate", run, "-o", tmp_path / "c.json")
    assert result.exit_code == 2 and "too few rows: 2 distinct shape(s), need at least 3" in result.output
    assert not (tmp_path / "c.json").exists()
    assert _invoke("calibrate", tmp_path / "nowhere").exit_code == 2
    assert "--max-heldout-error" in _invoke("calibrate", run, "--max-heldout-error", "x").output


def test_calibrate_estimate_with_calibration(planted):
    path = planted["path"]
    result = _invoke("estimate", "inference", "--model", "tiny", "--calibration", path, "--batch-size", "4",
                     "--context-len", "64", "--usd-per-hour", "0.5", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["regime"] in REGIMES and 0 < doc["mfu"] <= 1 and doc["hardware_id"] == "Synthetic CPU"
    # the same numbers as the library, and the cost is exactly t seconds of one accelerator per step
    lib = estimate_inference("tiny", calibration=Calibration.load(path), batch_size=4, context_len=64, usd_per_hour=0.5)
    assert doc["usd_per_1k_tokens"] == pytest.approx(lib["usd_per_1k_tokens"])
    assert doc["usd_per_1k_tokens"] == pytest.approx(lib["step_time_s"] / 4 * 1e3 / 3600 * 0.5)
    # without --dtype the calibration's dtype is used, and said
    assert doc["dtype"] == "fp32" and doc["dtype_source"] == "the calibration's"
    text = _invoke("estimate", "inference", "--model", "tiny", "--calibration", path, "--usd-per-hour", "0.5")
    assert text.exit_code == 0 and "effective MFU" in text.output and "-bound" in text.output
    assert "dtype fp32: the calibration's" in text.output
    # a dtype the calibration has no fit for is refused in one line
    wrong = _invoke("estimate", "inference", "--model", "tiny", "--calibration", path, "--usd-per-hour", "0.5",
                    "--dtype", "bf16")
    assert wrong.exit_code == 2 and wrong.output.count("\n") == 1 and "no bf16 decode fit" in wrong.output
    # another accelerator: only with --transfer, and labelled
    other = ["estimate", "inference", "--model", "llama-3-8b", "--calibration", path, "--hardware", "a100-sxm4-40gb",
             "--dtype", "bf16", "--usd-per-hour", "2", "--json"]
    refused = _invoke(*other)
    assert refused.exit_code == 2 and "--transfer" in refused.output and "transfer=True" not in refused.output
    no_dtype = _invoke(*[a for a in other if a not in ("--dtype", "bf16")])
    assert no_dtype.exit_code == 2 and "needs --transfer" in no_dtype.output, no_dtype.output
    # the calibration fixes the FLOP convention (its η is relative to it): another one is refused, not ignored
    conv = _invoke("estimate", "inference", "--model", "tiny", "--calibration", path, "--usd-per-hour", "0.5",
                   "--convention", "article")
    assert conv.exit_code == 2 and "counts FLOPs in the executed convention" in conv.output
    assert _invoke("estimate", "inference", "--model", "tiny", "--calibration", path, "--usd-per-hour", "0.5",
                   "--convention", "executed").exit_code == 0
    assert _invoke("estimate", "training", "--model", "tiny", "--tokens", "1e9", "--calibration", path,
                   "--usd-per-hour", "0.5", "--convention", "causal").exit_code == 2
    moved = _invoke(*other, "--transfer")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["mfu_source"].startswith("transferred from Synthetic CPU")
    train = _invoke("estimate", "training", "--model", "tiny", "--tokens", "1e9", "--calibration", path,
                    "--batch-size", "4", "--seq-len", "128", "--usd-per-hour", "0.5", "--json")
    assert train.exit_code == 0, train.output
    assert json.loads(train.stdout)["regime"] in REGIMES


def test_calibrate_article_with_calibration_needs_transfer_from_a_cpu(planted):
    refused = _invoke("article", "--calibration", planted["path"])
    assert refused.exit_code == 2 and "--transfer" in refused.output
    result = _invoke("article", "--calibration", planted["path"], "--transfer", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["calibrated"]
    assert {t["key"] for t in doc["tables"]} >= {"inference", "training", "training_a100"}
    aws = next(r for r in doc["tables"][0]["rows"] if r["key"] == "inference.aws.usd_per_1k_tokens")
    assert aws["article"] == pytest.approx(0.0035, rel=0.01) and aws["transferred"]
    assert aws["calibrated"] == pytest.approx(aws["article"] * aws["mfu_article"] / aws["mfu_calibrated"])
    text = _invoke("article", "--calibration", planted["path"], "--transfer")
    assert text.exit_code == 0 and "transferred from Synthetic CPU" in text.output


# ---- the real CPU bench of the tiny model --------------------------------------------------------------

@pytest.fixture(scope="module")
def cpu_bench(real_run_job):
    """A real `llmecon bench` of the tiny model on this CPU: the runs folder of this session's real `llmecon run`
    (tests/conftest.py, shared with test_run.py and only read here): the default CPU suite, 3 phases x batch 1, 4
    x seq 64, 256, in worker processes with one torch thread, five rounds each."""
    out, res = real_run_job
    assert res.exit_code == 0, res.output
    return out / "runs"


@pytest.mark.slow
def test_calibrate_real_cpu_bench_fits_or_refuses_by_name(cpu_bench, tmp_path):
    """On a real (noisy, shared) CPU: every phase is either fitted within the refusal threshold (50 % median
    held-out error) or refused naming the phase and why; --force keeps them all, each with its error."""
    path = tmp_path / "cpu.json"
    strict = _invoke("calibrate", cpu_bench, "-o", path)
    if strict.exit_code == 0:
        calib = Calibration.load(path)
        assert all(f.heldout.median_rel_error <= 0.5 for f in calib.fits)
        assert all("too noisy" in r.refused or "too few" in r.refused for r in calib.refused)
    else:
        assert strict.exit_code == 2 and "too noisy" in strict.output
    forced = _invoke("calibrate", cpu_bench, "-o", path, "--force")
    assert forced.exit_code == 0, forced.output
    calib = Calibration.load(path)
    assert {f.phase for f in calib.fits} == {"prefill", "decode", "train"}
    for f in calib.fits:
        assert f.peak_flops_source == "measured_ceiling" and f.hardware_id is None
        assert 0 < f.eta_compute <= 1 and f.t0_s >= 0
        assert 0 <= f.heldout.median_rel_error <= f.heldout.max_rel_error
        assert f.forced == (f.heldout.median_rel_error > 0.5)
        print(f"{f.phase}: held-out median {f.heldout.median_rel_error:.1%}, max {f.heldout.max_rel_error:.1%}, "
              f"eta_c {f.eta_compute:.3g}, t0 {f.t0_s * 1e3:.3g} ms")
    # bench -> calibrate -> estimate, end to end
    est = _invoke("estimate", "inference", "--model", "tiny", "--calibration", path, "--batch-size", "8",
                  "--context-len", "128", "--usd-per-hour", "0.1", "--json")
    assert est.exit_code == 0, est.output
    doc = json.loads(est.stdout)
    assert doc["regime"] in REGIMES and doc["usd_per_1m_tokens"] > 0 and 0 < doc["mfu"] <= 1


def test_calibrate_a_datasheet_device_is_priced_from_the_price_sheet(tmp_path, plant):
    from llmecon.costmodel.hardware import get_accelerator

    h100 = get_accelerator("h100-sxm")
    run = plant.planted_run(tmp_path / "runs", dtype="bf16", phases=("decode",), batches=(1, 8, 32), seqs=(128, 2048),
                            hardware_id="h100-sxm", device_name="NVIDIA H100 80GB HBM3", peak=h100.peak("bf16"),
                            bw=h100.memory_bytes_per_s, t0=2e-5)
    assert _invoke("calibrate", run, "-o", tmp_path / "h100.json").exit_code == 0
    fit = Calibration.load(tmp_path / "h100.json").fits[0]
    assert fit.hardware == "h100-sxm" and fit.peak_flops_source == "datasheet"
    # a 100M model decoding on an H100 is memory-bound at every planted shape: η_memory is what the rows resolve
    assert fit.eta_memory == pytest.approx(0.7, rel=0.03) and 0 < fit.eta_compute <= 1
    result = _invoke("estimate", "inference", "--model", "llama-3-8b", "--calibration", tmp_path / "h100.json",
                     "--batch-size", "1", "--context-len", "1024", "--price", "runpod-h100-sxm-od-2025", "--json")
    assert result.exit_code == 0, result.output
    small = json.loads(result.stdout)
    big = json.loads(_invoke("estimate", "inference", "--model", "llama-3-8b", "--calibration", tmp_path / "h100.json",
                             "--batch-size", "32", "--context-len", "1024", "--price", "runpod-h100-sxm-od-2025",
                             "--json").stdout)
    # a large model decoding at batch 1 is memory-bound and far dearer per token than at batch 32
    assert small["hardware_id"] == "h100-sxm" and small["dtype"] == "bf16" and small["regime"] == "memory-bound"
    assert small["usd_per_1m_tokens"] > 10 * big["usd_per_1m_tokens"] and big["mfu"] > 10 * small["mfu"]
    assert small["price"]["price_id"] == "runpod-h100-sxm-od-2025"


def test_calibrate_models_of_three_depths_fit_a_per_layer_overhead(tmp_path, plant):
    """Planted runs of models of 2, 12 and 16 layers (t0 0.5 ms, τ 0.2 ms per layer) written to disk: calibrate
    recovers τ from the records' own layer counts, prints both held-out errors, and --no-per-layer-overhead
    fits one t0 whose leave-one-model-out error shows it does not carry between depths."""
    for preset in ("tiny", "gpt2", "llama-3.2-1b"):
        layers = {"tiny": 2, "gpt2": 12, "llama-3.2-1b": 16}[preset]
        plant.planted_run(tmp_path / "runs", preset=preset, model=f"planted-{layers}l", work_scale=layers / 12,
                          dtype="fp32", phases=("decode",), batches=(1, 8, 32), seqs=(128, 2048), t0=5e-4, tau=2e-4)
    result = _invoke("calibrate", tmp_path / "runs", "-o", tmp_path / "c.json")
    assert result.exit_code == 0, result.output
    f = Calibration.load(tmp_path / "c.json").fits[0]
    assert f.tau_s_per_layer == pytest.approx(2e-4, rel=0.05) and f.range.layers == [2, 16]
    assert f.heldout_by_model.n_folds == 3 and f.heldout_by_model.median_rel_error < 0.05
    assert "per layer τ" in result.output and "η compute (executed)" in result.output
    assert "Synthetic CPU fp32 decode by shape" in result.output and ", by model " in result.output
    assert "(planted-12l " in result.output                   # each held-out model's own error
    flat = _invoke("calibrate", tmp_path / "runs", "-o", tmp_path / "flat.json", "--no-per-layer-overhead", "--force")
    assert flat.exit_code == 0, flat.output
    g = Calibration.load(tmp_path / "flat.json").fits[0]
    assert g.tau_s_per_layer is None and g.heldout_by_model.median_rel_error > 4 * f.heldout_by_model.median_rel_error
    # an estimate for a deeper model pays its own layers' overhead
    est = _invoke("estimate", "inference", "--model", "llama-3-8b", "--calibration", tmp_path / "c.json",
                  "--batch-size", "1", "--context-len", "128", "--usd-per-hour", "1", "--json")
    assert est.exit_code == 0, est.output
    doc = json.loads(est.stdout)
    assert doc["terms_s"]["overhead"] == pytest.approx(f.t0_s + 32 * f.tau_s_per_layer)
    assert doc["heldout_by_model_median_rel_error"] == pytest.approx(f.heldout_by_model.median_rel_error)
