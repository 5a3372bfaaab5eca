"""The Python API: lazy, documented, and returning exactly what the CLI prints."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import llmecon
from llmecon.cli import main
from llmecon.cli._output import plain

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "pandas", "matplotlib")


def _imported_after(code: str) -> list[str]:
    """The heavy libraries loaded after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys; print('HEAVY:', *[m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.rsplit("HEAVY:", 1)[1].split()


@pytest.mark.slow
def test_api_import_llmecon_is_lazy():
    assert _imported_after("import llmecon; llmecon.__version__") == []


@pytest.mark.slow
def test_api_help_and_flat_estimate_import_no_heavy_library():
    code = ("from llmecon.cli import main\n"
            "try:\n"
            "    main(['estimate', 'inference', '--model', 'gpt3-175b', '--hardware', 'a100-sxm4-40gb',\n"
            "          '--usd-per-hour', '2.4', '--mfu', '21.3%', '--json'])\n"
            "except SystemExit as exc:\n"
            "    assert exc.code in (0, None), exc.code")
    assert _imported_after(code) == []
    assert _imported_after("from llmecon.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass") == []


def test_api_names_are_documented_with_an_example():
    for name in llmecon.__all__:
        if name in ("__version__", "Results", "UserError"):
            continue
        doc = inspect.getdoc(getattr(llmecon, name)) or ""
        assert doc, f"llmecon.{name} has no docstring"
        if callable(getattr(llmecon, name)) and not isinstance(getattr(llmecon, name), type):
            assert ">>>" in doc, f"llmecon.{name}'s docstring has no example"


@pytest.mark.parametrize("module", ["llmecon.costmodel.info", "llmecon.estimate.inference", "llmecon.estimate.training",
                                    "llmecon.estimate.article", "llmecon.measure.timing",
                                    "llmecon.calibration.reference", "llmecon.costmodel.published",
                                    "llmecon.estimate.serving"])
def test_api_docstring_examples_run(module):
    import doctest
    import importlib

    failed, attempted = doctest.testmod(importlib.import_module(module))
    assert attempted and not failed


def test_api_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        llmecon.no_such_thing  # noqa: B018


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory, plant):
    """A calibration of a planted CPU run (decode, prefill and train; η_c 0.4, η_m 0.7, t0 2 ms)."""
    root = tmp_path_factory.mktemp("api")
    run = plant.planted_run(root / "runs", dtype="fp32", batches=(1, 8, 32), seqs=(128, 2048))
    llmecon.calibrate(run, root / "calibration.json")
    return root / "calibration.json"


FLAT_INFERENCE = [
    {"model": "gpt3-175b", "hardware": "a100-sxm4-40gb", "price": "aws-p4d.24xlarge-1yr-2023", "mfu": "21.3%"},
    {"model": "llama-3-8b", "hardware": "h100-sxm", "usd_per_hour": "2.5", "mfu": "0.4", "dtype": "fp8",
     "context_len": "8192", "usd_per_kwh": "0.1", "pue": "1.2"},
    {"model": "gpt3-175b", "hardware": "a100-sxm4-40gb", "usd_per_hour": "2.4", "mfu": "0.213",
     "convention": "non_embedding"},
]
FLAT_TRAINING = [
    {"model": "gpt3-175b", "tokens": "300B", "hardware": "tpu-v4", "usd_per_hour": "2.03", "mfu": "46.2%",
     "num_accelerators": "4096"},
    {"model": "chinchilla-70b", "hardware": "h100-sxm", "usd_per_hour": "3", "mfu": "0.45", "seq_len": "4096",
     "bytes_per_param": "16", "usd_per_kwh": "0.08"},
]
CALIBRATED_INFERENCE = [
    {"model": "tiny", "usd_per_hour": "0.5"},
    {"model": "tiny", "usd_per_hour": "0.5", "batch_size": "8", "context_len": "512", "phase": "prefill"},
    {"model": "llama-3-8b", "hardware": "h100-sxm", "dtype": "fp32", "usd_per_hour": "3", "transfer": True,
     "batch_size": "32"},
]
CALIBRATED_TRAINING = [
    {"model": "tiny", "tokens": "1B", "usd_per_hour": "0.5", "batch_size": "4", "seq_len": "256"},
    {"model": "llama-3-8b", "tokens": "15T", "hardware": "h100-sxm", "dtype": "fp32", "price": "aws-p5.48xlarge-od-2026",
     "transfer": True, "num_accelerators": "1024"},
]


def _cli_args(command: str, options: dict) -> list[str]:
    args = ["estimate", command, "--json"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def _same(command: str, options: dict, api_fn) -> None:
    printed = CliRunner().invoke(main, _cli_args(command, options))
    assert printed.exit_code == 0, printed.output
    returned = api_fn(**options)
    assert json.loads(printed.stdout) == json.loads(json.dumps(plain(returned)))


@pytest.mark.parametrize("options", FLAT_INFERENCE)
def test_api_flat_estimate_inference_equals_the_cli(options):
    _same("inference", options, llmecon.estimate_inference)


@pytest.mark.parametrize("options", FLAT_TRAINING)
def test_api_flat_estimate_training_equals_the_cli(options):
    _same("training", options, llmecon.estimate_training)


@pytest.mark.parametrize("options", CALIBRATED_INFERENCE)
def test_api_calibrated_estimate_inference_equals_the_cli(options, calibration_file):
    _same("inference", {**options, "calibration": str(calibration_file)}, llmecon.estimate_inference)


@pytest.mark.parametrize("options", CALIBRATED_TRAINING)
def test_api_calibrated_estimate_training_equals_the_cli(options, calibration_file):
    _same("training", {**options, "calibration": str(calibration_file)}, llmecon.estimate_training)


def test_api_takes_numbers_where_the_cli_takes_text():
    text = llmecon.estimate_inference("gpt3-175b", hardware="a100-sxm4-40gb", usd_per_hour="2.4", mfu="21.3%",
                                      context_len="2048")
    numbers = llmecon.estimate_inference("gpt3-175b", hardware="a100-sxm4-40gb", usd_per_hour=2.4, mfu=0.213,
                                         context_len=2048)
    assert text == numbers


def test_api_estimate_defaults_are_the_cli_defaults():
    """Options the CLI leaves out take the library's defaults: the same context length from Python and the
    command line (2,048; it once differed)."""
    out = llmecon.estimate_inference("gpt3-175b", hardware="a100-sxm4-40gb", usd_per_hour=2.4, mfu=0.213)
    printed = CliRunner().invoke(main, _cli_args("inference", {"model": "gpt3-175b", "hardware": "a100-sxm4-40gb",
                                                                "usd_per_hour": "2.4", "mfu": "0.213"}))
    assert out["context_len"] == json.loads(printed.stdout)["context_len"] == 2048


@pytest.mark.slow
def test_api_example_script_runs():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py")], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "GPT-3 on an A100 at 21.3% MFU: $0.0035 per 1K tokens" in done.stdout
    assert "0 regression(s)" in done.stdout and "report: " in done.stdout


@pytest.mark.slow
def test_api_readme_python_section_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the README's Python section has no python block"
    done = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
