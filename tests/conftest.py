"""Shared test helpers. Planted runs go through the real writers (records.store) and the real record builder
(measure.record.base_record), so every planted file is a valid current-schema file; only the numbers are
planted. Tests reach the helpers through the ``plant`` fixture."""

from __future__ import annotations

import gc
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmecon.costmodel.presets import load_model_shape
from llmecon.measure.record import base_record
from llmecon.measure.timing import DEFAULT_KNOBS
from llmecon.records.load import columns
from llmecon.records.store import make_config_id, new_run, write_record
from llmecon.records.schema import MIN_ENERGY_WINDOW_S
from llmecon.vocab import CONVENTIONS

DATA = Path(__file__).parent / "data"

# Synthetic published points (calibration/published_points.py), importable by any test as
# ``llmecon_test_published_points``: the suite imports test files with --import-mode=importlib, so a helper module
# is registered here.
_spec = importlib.util.spec_from_file_location("llmecon_test_published_points",
                                               Path(__file__).parent / "calibration" / "published_points.py")
sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sys.modules[_spec.name])
ENV = {"python": "3.11", "tool_version": "test", "torch": None, "git_sha": None, "git_dirty": None,
       "unavailable": {"torch": "fixture"}}

# The synthetic model of the planted step-time frames: 100M parameters in fp16.
N_PARAMS = 1.0e8
WEIGHT_BYTES = 2.0 * N_PARAMS
KV_BYTES_PER_TOKEN = 2 * 12 * 768 * 2.0   # K and V, 12 layers, width 768, 2 bytes


def synthetic_work(phase: str, batch: int, seq: int) -> tuple[float, float | None, int]:
    """(FLOPs per step, bytes per step or None, tokens per step) of the synthetic model."""
    attn = 4 * 12 * 768
    if phase == "decode":
        return 2 * N_PARAMS * batch + attn * seq * batch, WEIGHT_BYTES + KV_BYTES_PER_TOKEN * seq * batch, batch
    f = 2 * N_PARAMS * batch * seq + attn * seq * seq * batch / 2
    return (3 * f if phase == "train" else f), None, batch * seq


CONVS = CONVENTIONS
CEILING, CEILING_BW = 2e11, 2e10   # the measured ceilings of the report frame's synthetic CPU


class Plant:
    """Planted runs, records and frames."""

    work = staticmethod(synthetic_work)

    @staticmethod
    def meta(hardware_id: str | None = "h200", ceilings=None, name: str = "NVIDIA H200", kind: str = "cuda",
             dirty: bool | None = None, dtype: str = "bf16") -> dict:
        """run.json contents: an H200 by default, with a measured GEMM and copy ceiling for ``dtype``."""
        return {
            "environment": {**ENV, "git_dirty": dirty},
            "device": {"kind": kind, "device": "cuda:0" if kind == "cuda" else "cpu", "name": name,
                       "hardware_id": hardware_id,
                       "hardware_match_reason": None if hardware_id else f"{name!r} is not in the hardware sheet"},
            "ceilings": ceilings if ceilings is not None else
            {dtype: {"gemm_flops_per_s": 8e14, "gemm_shape": [8192, 8192, 8192], "copy_bytes_per_s": 4e12}},
            "config": {"planted": True},
        }

    @staticmethod
    def record(config_id: str | None = None, *, phase: str = "prefill", dtype: str = "bf16", samples=(0.01,) * 10,
               flops: float | None = 1e12, tokens: int | None = None, bytes_step: float | None = None,
               status: str = "ok", reasons=(), batch_size: int = 1, seq_len: int = 512, model: str = "tiny",
               name: str | None = None, energy_j: float | None = None, validity: dict | None = None,
               layers: int | None = None, time_scale: float | None = None, full_flops=None,
               full_bytes: float | None = None, rounds=None, ops: dict | None = None,
               new_tokens: int | None = None) -> dict:
        """One record as bench writes it, from the real builder; ``flops`` (a number for every convention, or a
        dict), ``bytes_step`` and ``tokens`` replace the cost model's work with planted numbers (None keeps the
        cost model's); ``full_flops``/``full_bytes`` plant the full model's work when it differs (--layers).
        ``samples`` is one round's samples; ``rounds`` (a list of sample lists) plants several rounds instead;
        ``ops`` the record's operator counts; ``new_tokens`` decode's and generate's (default 16)."""
        cfg = {"model": model, "phase": phase, "batch_size": batch_size, "seq_len": seq_len,
               "new_tokens": (new_tokens or 16) if phase in ("decode", "generate") else None, "dtype": dtype, "device": "cpu",
               "attn_implementation": "sdpa", "compile": False, "static_cache": False, "layers": layers,
               "activation_checkpointing": False, "weights": "random"}
        full = load_model_shape(model)
        shape = full.with_layers(layers) if layers else full
        cfg["config_id"] = config_id or make_config_id(cfg, name or full.name)
        if name:
            cfg["name"] = name
        rec = base_record(cfg, shape, full, status=status, reasons=list(reasons), knobs=DEFAULT_KNOBS["cpu"])
        def per_convention(value):
            return dict(value) if isinstance(value, dict) else {c: float(value) for c in CONVENTIONS}

        if flops is not None:
            rec["work"]["flops_per_step"] = per_convention(flops)
            rec["work"]["full_model"]["flops_per_step"] = per_convention(full_flops if full_flops is not None else flops)
        if bytes_step is not None or phase not in ("decode", "generate"):
            rec["work"]["bytes_per_step"] = bytes_step
            rec["work"]["full_model"]["bytes_per_step"] = full_bytes if full_bytes is not None else bytes_step
        if tokens is not None:
            rec["work"]["tokens_per_step"] = tokens
        if time_scale is not None:
            rec["model"]["time_scale"] = time_scale
        if ops is not None:
            rec["work"]["ops"] = ops
        if status in ("ok", "invalid"):
            verdict = validity or {"valid": status == "ok", "reasons": [], "warnings": []}
            per_round = [list(r) for r in rounds] if rounds is not None else [list(samples)]
            rec["timing"] = {"rounds": [{"samples_s": r, "first_call_s": 0.5, "warmup_iters": 3, "n_samples": len(r),
                                         "total_s": sum(s for s in r if s is not None and s == s),
                                         "validity": verdict} for r in per_round],
                             "validity": verdict}
        rec["memory"] = {"peak_bytes": 2.0e9}
        rec["telemetry"] = {"energy_j": energy_j, "mean_power_w": 500.0 if energy_j else None,
                            "window_s": MIN_ENERGY_WINDOW_S if energy_j else None}
        return rec

    @staticmethod
    def run(out_dir, records=(), **meta) -> Path:
        """A run folder under out_dir holding the given records (written by the real writer)."""
        run_dir = new_run(out_dir, Plant.meta(**meta))
        for rec in records:
            write_record(run_dir, rec)
        return run_dir

    @staticmethod
    def frame(*, eta_c=0.4, eta_m=0.7, t0=2e-3, peak=1e12, bw=1e11, noise=0.01, seed=0,
              phases=("prefill", "decode", "train"), batches=(1, 2, 4, 8, 16, 32), seqs=(128, 512, 2048),
              hardware_id=None, device_name="Synthetic CPU", dtype="fp16", run_id="run-a", datasheet=False,
              model="synthetic-100m", rounds=5, round_noise=0.02, layers=12, tau=0.0,
              work_scale=1.0) -> pd.DataFrame:
        """A tidy frame (the loader's columns that calibration and compare read) whose step times follow
        t = F/(peak·eta_c) + B/(bw·eta_m) + t0 + layers·tau, times a log-normal noise factor of relative size
        ``noise``; each row has ``rounds`` round means, log-normal with relative size ``round_noise`` around its
        t. ``work_scale`` multiplies the synthetic model's FLOPs and bytes (a wider or deeper model)."""
        rng = np.random.default_rng(seed)
        rows = []
        for phase in phases:
            for b in batches:
                for s in seqs:
                    F, B, tokens = synthetic_work(phase, b, s)
                    F, B = F * work_scale, (B * work_scale if B is not None else None)
                    t = F / (peak * eta_c) + (B / (bw * eta_m) if B is not None else 0.0) + t0 + layers * tau
                    t *= float(np.exp(rng.normal(0.0, noise))) if noise else 1.0
                    medians = sorted(float(t * np.exp(rng.normal(0.0, round_noise))) for _ in range(rounds))
                    rows.append({
                        "run_id": run_id, "config_id": f"{phase}-b{b}-s{s}", "model": model, "model_spec": model,
                        "hardware": hardware_id or device_name, "hardware_id": hardware_id,
                        "device_name": device_name, "dtype": dtype, "phase": phase, "status": "ok", "reason": None,
                        "warnings": None, "batch_size": b, "seq_len": s, "new_tokens": 16 if phase == "decode" else 0,
                        "num_hidden_layers": layers, "step_time_s": t, "round_means_s": medians, "n_rounds": rounds,
                        "step_time_spread": (medians[-1] - medians[0]) / 2 / t if rounds > 1 else None,
                        "n_samples": 10 * rounds, "tokens_per_step": tokens, "tokens_per_s": tokens / t, **{f"flops_per_step_{c}": F for c in CONVENTIONS},
                        "bytes_per_step": B, "weight_bytes": WEIGHT_BYTES,
                        "peak_flops_per_s": peak if datasheet else None,
                        "ceiling_flops_per_s": None if datasheet else peak,
                        "peak_bytes_per_s": bw if datasheet else None, "ceiling_bytes_per_s": None if datasheet else bw,
                        "mfu_executed": F / t / peak if datasheet else None, "mfu_executed_vs_ceiling": F / t / peak,
                        "valid": True,
                    })
        return pd.DataFrame(rows)

    @staticmethod
    def report_frame(*, phases=("prefill", "decode", "train"), batches=(1, 2, 4, 8), seq_lens=(32, 128),
                        hardware_id=None, device_name="Synthetic CPU", peak=None, peak_bw=None, model="tiny",
                        params=2e6, eta_c=0.5, eta_m=0.6, t0=2e-4, noise=0.02, seed=0) -> pd.DataFrame:
        """One row per (phase, batch, seq_len), step time = F/(C·η_c) + B/(W·η_m) + t0 with a little noise."""
        rng = np.random.default_rng(seed)
        rows = []
        for phase in phases:
            for b in batches:
                for L in seq_lens:
                    tokens = b if phase == "decode" else b * L
                    flops = (6 if phase == "train" else 2) * params * tokens
                    nbytes = 4 * params + b * L * 4096.0 if phase == "decode" else None
                    t = flops / (CEILING * eta_c) + (nbytes or 0) / (CEILING_BW * eta_m) + t0
                    t *= float(rng.lognormal(0.0, noise))
                    r = {"run_id": "synthetic-run", "config_id": f"{model}-{phase}-b{b}-s{L}", "model": model,
                         "model_spec": model, "hardware": hardware_id or device_name, "weight_bytes": 4 * params,
                         "hardware_id": hardware_id, "device_name": device_name, "device_kind": "cpu", "dtype": "fp32",
                         "phase": phase, "status": "ok", "reason": None, "batch_size": b, "seq_len": L,
                         "new_tokens": 16 if phase == "decode" else None, "step_time_s": t, "round_means_s": [t],
                         "n_rounds": 1, "n_samples": 10, "tokens_per_step": tokens, "tokens_per_s": tokens / t, "bytes_per_step": nbytes,
                         "peak_flops_per_s": peak, "ceiling_flops_per_s": CEILING, "peak_bytes_per_s": peak_bw,
                         "ceiling_bytes_per_s": CEILING_BW, "peak_memory_bytes": 1e8, "valid": True}
                    for i, c in enumerate(CONVS):
                        f = flops * (1 + 0.05 * i)
                        r[f"flops_per_step_{c}"] = f
                        r[f"achieved_flops_per_s_{c}"] = f / t
                        r[f"mfu_{c}"] = f / t / peak if peak else None
                        r[f"mfu_{c}_vs_ceiling"] = f / t / CEILING
                    r["bytes_per_s"] = nbytes / t if nbytes else None
                    r["bandwidth_util"] = nbytes / t / peak_bw if nbytes and peak_bw else None
                    r["bandwidth_util_vs_ceiling"] = nbytes / t / CEILING_BW if nbytes else None
                    rows.append(r)
        frame = pd.DataFrame(rows).reindex(columns=columns())
        for col in ("batch_size", "seq_len", "new_tokens", "n_rounds", "n_samples"):
            frame[col] = frame[col].astype("Int64")
        frame["valid"] = frame["valid"].fillna(False).astype(bool)
        return frame

    @staticmethod
    def planted_run(out_dir, *, slowdown: float = 1.0, jitter: float = 0.01, seed: int = 0, n_samples: int = 9,
                    rounds: int = 5, failed: tuple = (), ops: dict | None = None, preset: str = "tiny",
                    **kw) -> Path:
        """A run folder on disk whose records follow `frame`'s planted model: each record has ``rounds`` rounds of
        ``n_samples`` raw samples spread ±jitter around the planted time x slowdown; the configurations listed in
        ``failed`` (frame config ids such as "decode-b8-s128") are written with status "oom"; ``ops`` planted as
        every record's operator counts. The records' model block is the ``preset``'s (its depth is the frame's
        ``layers``, so a planted ``tau`` lands on the depth the loader reads)."""
        frame = Plant.frame(noise=0.0, rounds=1, layers=load_model_shape(preset).num_hidden_layers, **kw)
        hardware_id = kw.get("hardware_id")
        dtype = str(frame["dtype"].iloc[0])
        rng = np.random.default_rng(seed)
        run = new_run(out_dir, Plant.meta(hardware_id=hardware_id, name=str(frame["device_name"].iloc[0]),
                                          kind="cuda" if hardware_id else "cpu", dtype=dtype, ceilings={
                                              dtype: {"gemm_flops_per_s": kw.get("peak", 1e12), "gemm_shape": [1, 1, 1],
                                                      "copy_bytes_per_s": kw.get("bw", 1e11)}}))
        for r in frame.itertuples():
            t = r.step_time_s * slowdown
            planted = [[float(t * (1 + jitter * x)) for x in rng.uniform(-1, 1, n_samples)] for _ in range(rounds)]
            oom = r.config_id in failed
            rec = Plant.record(phase=r.phase, dtype=dtype, rounds=None if oom else planted, samples=(), ops=ops,
                               flops=float(r.flops_per_step_executed), tokens=int(r.tokens_per_step),
                               bytes_step=None if pd.isna(r.bytes_per_step) else float(r.bytes_per_step),
                               status="oom" if oom else "ok", reasons=("out of memory",) if oom else (),
                               batch_size=int(r.batch_size), seq_len=int(r.seq_len), name=r.model, model=preset)
            write_record(run, rec)
        return run


@pytest.fixture(scope="module", autouse=True)
def _gc_frozen_between_modules():
    """Freeze what is alive when a test module starts (imported modules, session fixtures) out of the cyclic
    garbage collector. The in-process benches call gc.collect() before every round (measure.device
    reset_memory); in a fresh `llmecon bench` process that walks the bench's own objects, in this long-lived test
    process it would walk the whole session's (0.2-0.3 s a call, five times that on the shared-core run of
    test_compare). Frozen objects are still freed by reference counting; the collect here frees the previous
    module's cycles first."""
    gc.collect()
    gc.freeze()
    yield


@pytest.fixture(scope="session")
def plant() -> type[Plant]:
    return Plant


def build_hf_model(cfg: dict, *, device: str | None = None):
    """The transformers model of an HF config dict (eager attention and experts), in eval mode; on the meta
    device when asked (no memory, for counting parameters)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    conf = AutoConfig.for_model(**cfg)
    kwargs = {"attn_implementation": "eager"}
    if cfg["model_type"] == "mixtral":
        kwargs["experts_implementation"] = "eager"  # the default grouped_mm is invisible to FlopCounterMode
    if device == "meta":
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(conf, **kwargs)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(conf, **kwargs).eval()


@pytest.fixture(scope="session")
def build_hf():
    """`build_hf_model` (builds a transformers model: tests that use it are marked slow)."""
    return build_hf_model


class Chromium:
    """Headless Chromium for the report: the page's DOM after its scripts ran, and a screenshot."""

    def __init__(self, exe: str):
        self.exe = exe

    def render(self, page: Path, tmp_path: Path, screenshot: Path | None = None) -> str:
        base = [self.exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}"]
        dom = subprocess.run(base + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                             timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        if screenshot is not None:
            shot = subprocess.run(base + ["--hide-scrollbars", "--window-size=1200,9000", f"--screenshot={screenshot}",
                                          page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
            assert shot.returncode == 0, shot.stderr[-2000:]
        return dom.stdout

    @staticmethod
    def assert_all_figures_loaded(dom: str, expected: int) -> None:
        m = re.search(r'<body[^>]*data-figures-loaded="(\d+)/(\d+)"', dom)
        assert m, "the page's script did not run (no data-figures-loaded on <body>)"
        loaded, total = int(m.group(1)), int(m.group(2))
        assert total == expected and loaded == total, f"{loaded}/{total} figures loaded, expected {expected}"


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """Headless Chromium (tests that use it start a browser: mark them slow); skipped when it is absent."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return Chromium(exe)


@pytest.fixture(scope="session")
def real_run_job(tmp_path_factory):
    """`llmecon run --device cpu --quiet` for real (the default suite, benched on this CPU, calibrated, priced and
    reported; about a minute on 2 cores): (out folder, click result). Run once per session and shared: tests/cli/
    test_run.py checks the command's outputs, tests/cli/test_calibrate.py calibrates its run folder again."""
    from click.testing import CliRunner

    from llmecon.cli import main

    out = tmp_path_factory.mktemp("llmecon-run") / "out"
    res = CliRunner().invoke(main, ["run", "--out", str(out), "--device", "cpu", "--quiet"])
    return out, res
