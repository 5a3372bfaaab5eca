"""Result records: written atomically under unique names, loaded into one tidy DataFrame.

Layout of one run (``new_run`` creates it; ``write_record`` fills it)::

    <out>/<run_id>/run.json                  run meta: schema_version, run_id, created_utc,
                                             tool_version, environment, device, ceilings, config
    <out>/<run_id>/records/<config_id>.json  one per configuration, raw samples inside

Guarantees (measurement-validity.md §5 items 5-8, 15):

- **Unique names.** A run id is the UTC time plus 8 random hex digits, and the folder is created with
  ``os.mkdir``, which fails rather than reuse a folder; on a collision a new id is drawn. Two runs
  started at once never share a folder; records inside a run are named by their config id.
- **Atomic writes.** Every file goes to a ``*.tmp`` in the same folder, is fsync'ed, then
  ``os.replace``'d over its name: a writer killed at any instant leaves the previous complete file or
  none, plus perhaps a ``*.tmp`` that loaders ignore. Rewriting a config id (``--resume``) replaces the
  old record the same way; the last write wins.
- **Strict JSON.** ``allow_nan=False``: a non-finite float is written as ``null`` and its location is
  listed in the record's ``nonfinite_fields``; a null timing sample makes the row invalid on load.
- **No secrets.** ``redact`` runs on everything written (see its docstring).
- **Resume.** Final statuses are ok, invalid, oom, skipped (re-running would give the same answer);
  error, timeout and interrupted records, and unreadable ones, are retried by ``--resume``.

Derived numbers are computed on load (``load_results``), from the raw samples and the sheets as
they are *now*, so a corrected datasheet peak re-derives old runs.

With ``--layers k`` BENCH builds only the first k of L layers. The record carries the cost model's
work counts for the model as built (``work``) and for the full model (``work.full_model``: exact,
nothing extrapolated), and ``model.time_scale``, the ratio of full-model to built-model work in the
term that dominates the phase (executed FLOPs for prefill and train, bytes read for decode; see
``model.extrapolation_basis``). The loader takes FLOPs and bytes per step from ``work.full_model``
and multiplies the measured time (median, IQR, first call) and energy per token by ``time_scale``.
The assumption: the layers not built take the same time per unit of that work as what ran; the
embedding and LM head, which run once per step whatever k is, are therefore counted once, not L/k
times. ``model.layer_scale`` (L/k) is information only. Records written before ``work.full_model``
existed (schema 1 too; the field is optional) load as they always did: time, FLOPs, bytes and
energy per token multiplied by ``layer_scale``, which overstates step time and FLOPs by the
embedding and LM head's share (about 20 % for llama-3-8b training with 8 of 32 layers), and the
first call by ``layer_scale`` too (earlier versions left it unscaled). MFU and bandwidth use are
ratios of work to time and, for the phase's dominant term, equal the built model's either way. Peak
memory is not scaled (it is what the built model used).

The datasheet peak is the sheet's dense peak for the record's ``config.dtype``: an fp32 run is
compared with the fp32 peak, never the tf32 one; only a run whose dtype is "tf32" (BENCH then
enables TF32 matmuls) uses the tf32 peak. Rows of a run whose git checkout was dirty get the
warning ``dirty_build``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from llmecon import __version__
from llmecon.errors import UserError

SCHEMA_VERSION = 1
STATUSES = ("ok", "invalid", "oom", "error", "timeout", "skipped", "interrupted")
FINAL_STATUSES = frozenset({"ok", "invalid", "oom", "skipped"})
REDACTED = "<redacted>"

# -------------------------------------------------------------------------------------- redaction

# Key names that hold secrets: any *secret*/*password* segment; *token* or *key* only as the last
# segment (HF_TOKEN, api_key) so that `new_tokens`, `pad_token_id`, `num_key_value_heads` survive.
_SECRET_KEY = re.compile(
    r"(^|[_\-.])(secret|secrets|password|passwd|pwd|credential|credentials)([_\-.]|$)"
    r"|(^|[_\-.])(token|key|apikey|auth|authorization|cookie)$",
    re.IGNORECASE,
)
# Values that look like credentials wherever they appear inside a string.
_SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9])("
    r"hf_[A-Za-z0-9]{8,}"  # Hugging Face user access tokens
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style API keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r")"
)


def _secret_env_values() -> list[str]:
    """Values of secret-named environment variables (long enough to be worth hiding)."""
    return [v for k, v in os.environ.items() if _SECRET_KEY.search(k) and len(v) >= 8]


def redact(obj: Any, *, _env: list[str] | None = None) -> Any:
    """A copy of obj with secrets replaced by "<redacted>".

    Replaced: the value of any mapping key named like a secret (HF_TOKEN, hf_token, api_key,
    AWS_SECRET_ACCESS_KEY, password...; not `new_tokens`, `pad_token_id` or `num_key_value_heads`),
    any substring that looks like a token (hf_..., ghp_..., sk-..., AKIA...), and any literal
    occurrence of the value of a secret-named environment variable (in a traceback, say).
    """
    env = _secret_env_values() if _env is None else _env
    if isinstance(obj, Mapping):
        secret = lambda k, v: isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")  # noqa: E731
        return {k: REDACTED if secret(k, v) else redact(v, _env=env) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, _env=env) for v in obj]
    if isinstance(obj, str):
        for value in env:
            obj = obj.replace(value, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, obj)
    return obj


# -------------------------------------------------------------------------------------- writing


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _jsonable(obj: Any, path: str, nonfinite: list[str]) -> Any:
    """Plain JSON types: numpy scalars unwrapped, tuples to lists, NaN/inf -> None (path noted)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, f"{path}.{k}" if path else str(k), nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(obj)]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars
        obj = obj.tolist()
        if isinstance(obj, list):
            return _jsonable(obj, path, nonfinite)
    if isinstance(obj, float) and not math.isfinite(obj):
        nonfinite.append(f"{path}={obj}")
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)  # Path, torch.dtype, ...: their text is what a reader needs


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    """Write text to path atomically: tmp file in the same folder, fsync, os.replace, fsync folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _new_run_id() -> str:
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"


def new_run(out_dir, meta: Mapping) -> Path:
    """Create ``<out_dir>/<run_id>/`` (and ``records/``) and write ``run.json``; return the folder.

    meta holds ``device``, ``ceilings``, ``config`` and anything else worth keeping; ``environment``
    is filled with `environment()` when absent. schema_version, run_id, created_utc and
    tool_version are set here. Everything is redacted before it is written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create results folder {out}: {exc.strerror or exc}") from None
    for _ in range(100):
        run_id = _new_run_id()
        try:
            os.mkdir(out / run_id)
            break
        except FileExistsError:
            continue
    else:  # 100 collisions of 32 random bits: something else is wrong
        raise RuntimeError(f"could not create a unique run folder in {out}")
    run_dir = out / run_id
    (run_dir / "records").mkdir()
    run = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_utc": _utc_now(),
        "tool_version": __version__,
        **{k: v for k, v in meta.items() if k not in ("schema_version", "run_id", "created_utc")},
    }
    if "environment" not in run:
        run["environment"] = environment()
    nonfinite: list[str] = []
    run = _jsonable(redact(run), "", nonfinite)
    if nonfinite:
        run["nonfinite_fields"] = nonfinite
    _atomic_write(run_dir / "run.json", _dumps(run))
    return run_dir


def _read_json(path: Path) -> Any:
    """Strict JSON (bare NaN/Infinity refused); ValueError on anything unreadable."""

    def _refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    text = path.read_text(encoding="utf-8")
    return json.loads(text, parse_constant=_refuse)


def open_run(run_dir) -> dict:
    """The run.json of an existing run folder (for --resume); UserError if it is not one."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no run.json)")
    try:
        run = _read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(run, dict):
        raise UserError(f"cannot read {path}: not a JSON object")
    _check_schema(run.get("schema_version"), path)
    return run


_CONFIG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=,@-]{0,199}$")


def make_config_id(config: Mapping) -> str:
    """A readable, deterministic, file-name-safe id for one configuration.

    e.g. ``prefill-llama-3-8b-bf16-b8-s2048-3f9a1c2e``: the hash covers the whole config, so two
    configs that differ anywhere get different ids, and the same config always the same id.
    """
    digest = hashlib.sha1(json.dumps(_jsonable(config, "", []), sort_keys=True).encode()).hexdigest()[:8]
    model = re.sub(r"[^A-Za-z0-9.]+", "-", Path(str(config.get("model", "model"))).name).strip("-.")[:40]
    parts = [config.get("phase"), model or "model", config.get("dtype")]
    parts += [f"b{config['batch_size']}" if config.get("batch_size") is not None else None]
    parts += [f"s{config['seq_len']}" if config.get("seq_len") is not None else None]
    if config.get("phase") == "decode" and config.get("new_tokens") is not None:
        parts.append(f"n{config['new_tokens']}")
    return "-".join(str(p) for p in parts if p not in (None, "")) + f"-{digest}"


def write_record(run_dir, record: Mapping) -> Path:
    """Write one configuration's record to ``records/<config_id>.json`` atomically; return the path.

    schema_version is set; run_id (the folder's name) and created_utc are filled when absent.
    Raises ValueError for a malformed record (bad config_id or status): that is a caller's bug.
    """
    run_dir = Path(run_dir)
    config_id = record.get("config_id")
    if not isinstance(config_id, str) or not _CONFIG_ID.match(config_id):
        raise ValueError(f"config_id must match {_CONFIG_ID.pattern}, got {config_id!r}")
    if record.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {record.get('status')!r}")
    out = {"schema_version": SCHEMA_VERSION, "run_id": run_dir.name, "created_utc": _utc_now()}
    out.update({k: v for k, v in record.items() if k != "schema_version"})
    nonfinite: list[str] = []
    out = _jsonable(redact(out), "", nonfinite)
    if nonfinite:
        out["nonfinite_fields"] = nonfinite
    records = run_dir / "records"
    records.mkdir(parents=True, exist_ok=True)
    path = records / f"{config_id}.json"
    _atomic_write(path, _dumps(out))
    return path


def _record_files(run_dir: Path) -> list[Path]:
    """records/*.json, without hidden files and *.tmp leftovers of interrupted writes."""
    folder = run_dir / "records"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".") and p.is_file())


def finished_config_ids(run_dir) -> set[str]:
    """Config ids whose record has a final status (ok, invalid, oom, skipped).

    error, timeout and interrupted records are not final (a rerun may succeed), nor are unreadable
    records: ``--resume`` runs those configurations again and overwrites their record.
    """
    done = set()
    for path in _record_files(Path(run_dir)):
        try:
            rec = _read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("status") in FINAL_STATUSES and isinstance(rec.get("config_id"), str):
            done.add(rec["config_id"])
    return done


# -------------------------------------------------------------------------------------- environment


def _package_version(name: str) -> str | None:
    from importlib import metadata

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


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(source_dir=None) -> dict:
    """Versions and provenance for run.json: what produced these numbers.

    {python, torch, transformers, cuda, driver, git_sha, git_dirty, platform, cpu_model, cpu_count,
    tool_version, unavailable}: a field that could not be determined is None and ``unavailable``
    says why (e.g. {"git_sha": "not a git checkout"}). torch is imported only if already imported
    or importable (for its CUDA version); the driver comes from NVML when it answers. git_sha and
    git_dirty (tracked files changed, untracked ignored) describe source_dir, by default the folder
    this llmecon is imported from.
    """
    source_dir = Path(source_dir) if source_dir is not None else Path(__file__).resolve().parent
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "tool_version": __version__,
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    why: dict[str, str] = {}
    try:
        import torch

        env["torch"] = torch.__version__
        env["cuda"] = torch.version.cuda
        if env["cuda"] is None:
            why["cuda"] = "torch built without CUDA"
    except Exception as exc:  # absent or broken: record it, keep going
        env["torch"] = env["cuda"] = None
        why["torch"] = why["cuda"] = f"torch not importable: {type(exc).__name__}"
    env["transformers"] = _package_version("transformers")
    if env["transformers"] is None:
        why["transformers"] = "not installed"
    env["driver"] = None
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            env["driver"] = driver.decode() if isinstance(driver, bytes) else str(driver)
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:
        why["driver"] = f"NVML unavailable: {type(exc).__name__}: {exc}"[:200]
    try:
        env["git_sha"] = _git(source_dir, "rev-parse", "HEAD").strip()
        env["git_dirty"] = bool(_git(source_dir, "status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        env["git_sha"] = env["git_dirty"] = None
        why["git_sha"] = why["git_dirty"] = f"not a git checkout: {exc}"[:200]
    env["unavailable"] = why
    return env


# -------------------------------------------------------------------------------------- loading


class _Problem(Exception):
    """A file that cannot be loaded; the message is the reason."""


def _schema_problem(version: Any) -> str | None:
    """Why a file's schema_version cannot be read, or None. Version 1 is the only one so far: an
    older version would be migrated here, step by step."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"bad schema_version {version!r}"
    if version > SCHEMA_VERSION:
        return f"schema_version {version} is newer than this llmecon reads ({SCHEMA_VERSION}); upgrade llmecon"
    return None


def _check_schema(version: Any, path: Path) -> None:
    problem = _schema_problem(version)
    if problem:
        raise UserError(f"{path}: {problem}")


def _conventions() -> tuple[str, ...]:
    from llmecon.costmodel.flops import CONVENTIONS

    return CONVENTIONS


def columns() -> list[str]:
    """The tidy frame's columns, in order (the contract's names plus a few descriptive extras)."""
    convs = _conventions()
    return [
        "run_id", "config_id", "created_utc", "model", "hardware_id", "device_name", "device_kind",
        "dtype", "phase", "status", "reason", "warnings",
        "batch_size", "seq_len", "new_tokens", "attn_implementation", "compile", "static_cache",
        "activation_checkpointing", "layer_scale", "time_scale",
        "step_time_s", "step_time_iqr_s", "first_call_s", "n_samples", "tokens_per_step", "tokens_per_s",
        *[f"flops_per_step_{c}" for c in convs], "bytes_per_step",
        "peak_flops_per_s", "peak_reason", "ceiling_flops_per_s", "peak_bytes_per_s", "ceiling_bytes_per_s",
        *[f"achieved_flops_per_s_{c}" for c in convs],
        *[f"mfu_{c}" for c in convs],
        *[f"mfu_{c}_vs_ceiling" for c in convs],
        "bytes_per_s", "bandwidth_util", "bandwidth_util_vs_ceiling",
        "peak_memory_bytes", "energy_j_per_token", "mean_power_w", "valid", "path",
    ]  # fmt: skip


_INT_COLUMNS = ("batch_size", "seq_len", "new_tokens", "n_samples")
_TEXT_COLUMNS = ("run_id", "config_id", "created_utc", "model", "hardware_id", "device_name", "device_kind", "dtype",
                 "phase", "status", "reason", "warnings", "attn_implementation", "peak_reason", "path")  # fmt: skip
_BOOL_COLUMNS = ("compile", "static_cache", "activation_checkpointing")


def _lookup_accelerator(hardware_id: str):
    """The hardware sheet's entry, read now (so a corrected sheet re-derives old runs)."""
    from llmecon.costmodel.hardware import get_accelerator

    return get_accelerator(hardware_id)


def _num(value: Any, where: str) -> float | None:
    """A finite float, None for null; _Problem for anything else (strings, booleans, lists)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Problem(f"{where} is not a number: {value!r}")
    value = float(value)
    return value if math.isfinite(value) else None


def _int(value: Any, where: str) -> int | None:
    """An integer (or None for null); _Problem for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Problem(f"{where} is not an integer: {value!r}")
    return value


def _extend_unique(into: list[str], items: Iterable[str]) -> None:
    for item in items:
        if item not in into:
            into.append(item)


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _get(obj: Mapping, *keys: str, required: bool = True) -> Any:
    """obj[k1][k2]...; _Problem naming the dotted key when a required one is missing."""
    cur: Any = obj
    for i, key in enumerate(keys):
        if not isinstance(cur, Mapping) or key not in cur:
            if required:
                raise _Problem(f"missing key {'.'.join(keys[: i + 1])}")
            return None
        cur = cur[key]
    return cur


class _Sheet:
    """Datasheet peaks looked up once per (hardware_id, dtype) during one load."""

    def __init__(self):
        self._cache: dict = {}

    def accelerator(self, hardware_id: str | None):
        """(Accelerator | None, reason | None)."""
        if hardware_id not in self._cache:
            try:
                self._cache[hardware_id] = (_lookup_accelerator(hardware_id), None)
            except UserError as exc:
                self._cache[hardware_id] = (None, str(exc))
        return self._cache[hardware_id]


def _run_info(run: Mapping) -> dict:
    device = run.get("device") if isinstance(run.get("device"), Mapping) else {}
    return {
        "hardware_id": device.get("hardware_id"),
        "hardware_reason": device.get("hardware_match_reason"),
        "device_name": device.get("name"),
        "device_kind": device.get("kind"),
        "ceilings": run.get("ceilings") if isinstance(run.get("ceilings"), Mapping) else {},
        "dirty": isinstance(run.get("environment"), Mapping) and run["environment"].get("git_dirty") is True,
    }


def _ceilings(info: Mapping, dtype: str, where: str) -> tuple[float | None, float | None]:
    """(gemm FLOP/s in the run's dtype, copy bytes/s); copy bandwidth does not depend on dtype, so
    any dtype's measurement serves when the run's own has none."""
    ceilings = info["ceilings"]
    own = ceilings.get(dtype) if isinstance(ceilings.get(dtype), Mapping) else {}
    gemm = _num(own.get("gemm_flops_per_s"), f"{where}.ceilings.{dtype}.gemm_flops_per_s")
    copy = _num(own.get("copy_bytes_per_s"), f"{where}.ceilings.{dtype}.copy_bytes_per_s")
    if copy is None:
        for other in ceilings.values():
            if isinstance(other, Mapping) and _num(other.get("copy_bytes_per_s"), "ceilings") is not None:
                copy = float(other["copy_bytes_per_s"])
                break
    return gemm, copy


def _record_row(rec: Any, info: Mapping, sheet: _Sheet, convs: tuple[str, ...]) -> dict:
    """One tidy row from one parsed record; _Problem if the record is unusable."""
    from llmecon.bench.timing import summarize

    if not isinstance(rec, dict):
        raise _Problem("not a JSON object")
    schema_problem = _schema_problem(_get(rec, "schema_version"))
    if schema_problem:
        raise _Problem(schema_problem)
    status = _get(rec, "status")
    if status not in STATUSES:
        raise _Problem(f"unknown status {status!r}")
    config = _get(rec, "config")
    if not isinstance(config, Mapping):
        raise _Problem("config is not an object")
    row: dict[str, Any] = {
        "run_id": _get(rec, "run_id"),
        "config_id": _get(rec, "config_id"),
        "created_utc": rec.get("created_utc"),
        "model": _get(rec, "config", "model"),
        "hardware_id": info["hardware_id"],
        "device_name": info["device_name"],
        "device_kind": info["device_kind"],
        "dtype": _get(rec, "config", "dtype"),
        "phase": _get(rec, "config", "phase"),
        "status": status,
        "batch_size": _int(_get(rec, "config", "batch_size"), "config.batch_size"),
        "seq_len": _int(_get(rec, "config", "seq_len"), "config.seq_len"),
        "new_tokens": _int(config.get("new_tokens"), "config.new_tokens"),
        "attn_implementation": config.get("attn_implementation"),
        "compile": config.get("compile"),
        "static_cache": config.get("static_cache"),
        "activation_checkpointing": config.get("activation_checkpointing"),
    }
    reasons = [r.strip() for r in rec["reason"].split(";") if r.strip()] if isinstance(rec.get("reason"), str) else []
    warnings: list[str] = ["dirty_build"] if info["dirty"] else []
    layer_scale = _num(_get(rec, "model", "layer_scale", required=False), "model.layer_scale") or 1.0
    row["layer_scale"] = layer_scale
    work = _get(rec, "work", required=False)
    work = work if isinstance(work, Mapping) else {}
    full_work = work.get("full_model")
    if full_work is not None:  # full-model work from the cost model; time extrapolated by time_scale
        if not isinstance(full_work, Mapping):
            raise _Problem("work.full_model is not an object")
        time_scale = _num(_get(rec, "model", "time_scale"), "model.time_scale")
        if time_scale is None or not time_scale > 0:
            raise _Problem(f"model.time_scale is not a positive number: {rec['model']['time_scale']!r}")
        work_scale = 1.0
    else:  # a record from before work.full_model: the whole step scaled by layer_scale
        full_work, time_scale, work_scale = work, layer_scale, layer_scale
    row["time_scale"] = time_scale
    memory = rec.get("memory") if isinstance(rec.get("memory"), Mapping) else {}
    row["peak_memory_bytes"] = _num(memory.get("peak_bytes"), "memory.peak_bytes")
    telemetry = rec.get("telemetry") if isinstance(rec.get("telemetry"), Mapping) else {}
    row["mean_power_w"] = _num(telemetry.get("mean_power_w"), "telemetry.mean_power_w")

    measured = status in ("ok", "invalid")
    if measured:
        samples = _get(rec, "timing", "samples_s")
        if not isinstance(samples, list):
            raise _Problem("timing.samples_s is not a list")
        samples = [_num(s, "timing.samples_s[]") for s in samples]
        stats, verdict = summarize(samples)
        stored = rec["timing"].get("validity") if isinstance(rec["timing"].get("validity"), Mapping) else {}
        if stored.get("valid") is False and not stored.get("reasons"):
            reasons.append("timing_invalid")
        stored_reasons = [str(r) for r in stored.get("reasons") or [] if isinstance(stored.get("reasons"), list)]
        stored_warnings = [str(w) for w in stored.get("warnings") or [] if isinstance(stored.get("warnings"), list)]
        _extend_unique(reasons, [*stored_reasons, *verdict.reasons])
        _extend_unique(warnings, [*stored_warnings, *verdict.warnings])
        where = "work.full_model" if full_work is not work else "work"
        flops = _get(full_work, "flops_per_step")
        if not isinstance(flops, Mapping):
            raise _Problem(f"{where}.flops_per_step is not an object")
        tokens = _num(_get(rec, "work", "tokens_per_step"), "work.tokens_per_step")
        step = stats["median_s"] * time_scale if stats["median_s"] is not None else None
        iqr = stats["iqr_s"] * time_scale if stats["iqr_s"] is not None else None
        row.update(step_time_s=step, step_time_iqr_s=iqr, n_samples=len(samples), tokens_per_step=tokens)
        first = _num(rec["timing"].get("first_call_s"), "timing.first_call_s")
        row["first_call_s"] = first * time_scale if first is not None else None
        row["tokens_per_s"] = _ratio(tokens, step)
        for c in convs:
            value = _num(flops.get(c), f"{where}.flops_per_step.{c}")
            row[f"flops_per_step_{c}"] = value * work_scale if value is not None else None
        bytes_step = _num(full_work.get("bytes_per_step"), f"{where}.bytes_per_step")
        row["bytes_per_step"] = bytes_step * work_scale if bytes_step is not None and row["phase"] == "decode" else None
        energy = _num(telemetry.get("energy_j"), "telemetry.energy_j")
        if energy is not None and tokens and samples:
            row["energy_j_per_token"] = energy / (tokens * len(samples)) * time_scale

    # sheets and ceilings: looked up now
    dtype = row["dtype"]
    accel, why = (None, None)
    if info["hardware_id"] is None:
        why = info["hardware_reason"] or "device not in the hardware sheet"
    else:
        accel, why = sheet.accelerator(info["hardware_id"])
    peak = None
    if accel is not None:
        try:
            peak = accel.peak(dtype)
        except UserError as exc:
            why = str(exc)
        else:
            if peak is None:
                why = f"no dense {dtype} peak for {accel.id} in the hardware sheet"
    row["peak_flops_per_s"] = peak
    row["peak_reason"] = None if peak is not None else why
    row["peak_bytes_per_s"] = accel.memory_bytes_per_s if accel is not None else None
    row["ceiling_flops_per_s"], row["ceiling_bytes_per_s"] = _ceilings(info, dtype, "run")

    if measured:
        step = row["step_time_s"]
        if step is None or not step > 0:
            reasons.append("no_step_time")
        if row["tokens_per_s"] is None or not row["tokens_per_s"] > 0:
            reasons.append("non_positive_tokens_per_s")
        for c in convs:
            achieved = _ratio(row[f"flops_per_step_{c}"], step)
            row[f"achieved_flops_per_s_{c}"] = achieved
            row[f"mfu_{c}"] = _ratio(achieved, row["peak_flops_per_s"])
            row[f"mfu_{c}_vs_ceiling"] = _ratio(achieved, row["ceiling_flops_per_s"])
        row["bytes_per_s"] = _ratio(row["bytes_per_step"], step)
        row["bandwidth_util"] = _ratio(row["bytes_per_s"], row["peak_bytes_per_s"])
        row["bandwidth_util_vs_ceiling"] = _ratio(row["bytes_per_s"], row["ceiling_bytes_per_s"])
        _extend_unique(reasons, _physics(row, convs))
        if status == "ok" and reasons:
            row["status"] = "invalid"
    row["reason"] = "; ".join(reasons) or None
    row["warnings"] = "; ".join(warnings) or None
    row["valid"] = row["status"] == "ok"
    return row


def _physics(row: Mapping, convs: tuple[str, ...]) -> list[str]:
    """Reasons a row's derived numbers are impossible (measurement-validity.md §5 items 6 and 9).

    The gate checks the ``executed`` convention, the FLOPs the kernels ran: its MFU against the
    datasheet and against the measured ceiling must be in (0, 1] where defined, and so must a decode
    row's bandwidth use against the datasheet. The other conventions may count work that never ran
    (the article's 2N includes the embedding table), so they are not gated; nor is bandwidth against
    the measured copy ceiling (a read-only stream can beat a copy).
    """
    gated = ["mfu_executed", "mfu_executed_vs_ceiling"] if "executed" in convs else []
    if row.get("phase") == "decode":
        gated.append("bandwidth_util")
    out = []
    for column in gated:
        value = row.get(column)
        if value is not None and not 0 < value <= 1:
            out.append(f"{column}_out_of_range ({value:.3g})")
    return out


def _find_runs(path: Path) -> list[Path]:
    """Run folders at path: path itself, or its immediate subfolders that look like runs."""
    def is_run(p: Path) -> bool:
        return (p / "run.json").is_file() or (p / "records").is_dir()

    if is_run(path):
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and is_run(p))


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _load_run_meta(run_dir: Path, problems: list[str], strict: bool) -> dict | None:
    """run.json of a run folder; a problem (and None meta) if missing or unreadable; skip if newer."""
    path = run_dir / "run.json"

    def problem(reason: str) -> None:
        message = f"{path}: {reason}"
        if strict:
            raise UserError(message)
        problems.append(message)

    if not path.is_file():
        problem("missing run.json; device and ceilings unknown (no MFU)")
        return {}
    try:
        run = _read_json(path)
    except (OSError, ValueError) as exc:
        problem(f"unreadable ({exc}); device and ceilings unknown (no MFU)")
        return {}
    if not isinstance(run, dict):
        problem("not a JSON object; device and ceilings unknown (no MFU)")
        return {}
    schema_problem = _schema_problem(run.get("schema_version"))
    if schema_problem:
        problem(f"{schema_problem}; run skipped")
        return None
    return run


def load_results(paths, *, strict: bool = False):
    """Load one run folder, a folder of runs, or several of either, into one tidy DataFrame.

    Returns (frame, problems): one row per readable record, columns as `columns()`; problems is a
    list of "<file>: <reason>" for every file that could not be used (corrupted, truncated, newer
    schema, missing keys, missing run.json). strict=True raises UserError on the first problem.
    Only json is used to read files. UserError if a path does not exist or no record loads.
    """
    import pandas as pd

    convs = _conventions()
    sheet = _Sheet()
    rows: list[dict] = []
    problems: list[str] = []
    targets = _as_paths(paths)
    if not targets:
        raise UserError("no results path given")
    for target in targets:
        if target.is_file() and target.name == "run.json":
            target = target.parent
        if not target.exists():
            raise UserError(f"no such results folder: {target}")
        if not target.is_dir():
            raise UserError(f"not a results folder: {target}")
        for run_dir in _find_runs(target):
            run = _load_run_meta(run_dir, problems, strict)
            if run is None:
                continue
            info = _run_info(run)
            for path in _record_files(run_dir):
                try:
                    try:
                        rec = _read_json(path)
                    except (OSError, ValueError) as exc:
                        raise _Problem(f"unreadable JSON ({exc})") from None
                    row = _record_row(rec, info, sheet, convs)
                except _Problem as exc:
                    if strict:
                        raise UserError(f"{path}: {exc}") from None
                    problems.append(f"{path}: {exc}")
                    continue
                row["path"] = str(path)
                rows.append(row)
    if not rows:
        where = ", ".join(str(t) for t in targets)
        # the caller never sees `problems` when this raises: name the first one here
        suffix = f" ({len(problems)} unreadable file(s); first: {problems[0]})" if problems else ""
        raise UserError(f"no results in {where}{suffix}")
    frame = pd.DataFrame.from_records(rows, columns=columns())
    for column in frame.columns:
        if column in _INT_COLUMNS:
            frame[column] = frame[column].astype("Int64")
        elif column in _BOOL_COLUMNS:
            frame[column] = frame[column].astype("boolean")
        elif column == "valid":
            frame[column] = frame[column].astype(bool)
        elif column not in _TEXT_COLUMNS:
            frame[column] = frame[column].astype(float)
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame, problems


# -------------------------------------------------------------------------------------- listing


def list_runs(out_dir) -> list[dict]:
    """One summary per run folder under out_dir (or out_dir itself if it is a run), json only.

    Each: {run_id, created_utc, device, hardware_id, models, ok, total, problems, path}.
    """
    root = Path(out_dir)
    if not root.is_dir():
        raise UserError(f"no such results folder: {root}")
    out = []
    for run_dir in _find_runs(root):
        problems: list[str] = []
        run = _load_run_meta(run_dir, problems, strict=False) or {}
        device = run.get("device") if isinstance(run.get("device"), Mapping) else {}
        models, ok, total = [], 0, 0
        for path in _record_files(run_dir):
            total += 1
            try:
                rec = _read_json(path)
            except (OSError, ValueError):
                problems.append(f"{path}: unreadable JSON")
                continue
            if not isinstance(rec, dict):
                problems.append(f"{path}: not a JSON object")
                continue
            ok += rec.get("status") == "ok"
            model = rec.get("config", {}).get("model") if isinstance(rec.get("config"), Mapping) else None
            if model is not None and str(model) not in models:
                models.append(str(model))
        out.append({
            "run_id": run.get("run_id", run_dir.name),
            "created_utc": run.get("created_utc"),
            "device": device.get("name"),
            "hardware_id": device.get("hardware_id"),
            "models": models,
            "ok": ok,
            "total": total,
            "problems": problems,
            "path": str(run_dir),
        })  # fmt: skip
    return out
