"""What produced a run: Python, platform, package versions and the git checkout, for run.json.

No torch or NVML is imported here: package versions come from their installed metadata; the CUDA and
driver versions are the device probe's (bench fills them in).
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from llmecon._version import __version__

_SOURCE_DIR = Path(__file__).resolve().parents[1]


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(source_dir: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(source_dir), *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"git exit status {done.returncode}")
    return done.stdout


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(source_dir=None) -> dict:
    """{python, tool_version, platform, cpu_model, cpu_count, torch, cuda, transformers, driver, git_sha,
    git_dirty, unavailable}. A field that could not be determined is None and ``unavailable`` says why.
    git_sha and git_dirty (tracked files changed; untracked ones ignored) describe ``source_dir``, by default
    the folder this llmecon is imported from."""
    source_dir = Path(source_dir) if source_dir is not None else _SOURCE_DIR
    why: dict[str, str] = {"cuda": "not probed (bench fills it in from the device)",
                           "driver": "not probed (bench fills it in from NVML)"}
    env = {"python": platform.python_version(), "tool_version": __version__, "platform": platform.platform(),
           "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "cuda": None, "driver": None}
    for name in ("torch", "transformers"):
        env[name] = package_version(name)
        if env[name] is None:
            why[name] = "not installed"
    try:
        env["git_sha"] = _git(source_dir, "rev-parse", "HEAD").strip()
        env["git_dirty"] = bool(_git(source_dir, "status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        env["git_sha"] = env["git_dirty"] = None
        why["git_sha"] = why["git_dirty"] = f"not a git checkout: {exc}"[:200]
    env["unavailable"] = why
    return env
