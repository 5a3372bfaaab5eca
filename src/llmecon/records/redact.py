"""No secrets in result files: ``redact`` runs on everything a run or record writes."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

REDACTED = "<redacted>"

# Key names that hold secrets: any *secret*/*password* segment; *token* or *key* only as the last segment
# (HF_TOKEN, api_key) so that `new_tokens`, `pad_token_id` and `num_key_value_heads` survive.
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

    Replaced: the text value of any mapping key named like a secret (HF_TOKEN, hf_token, api_key,
    AWS_SECRET_ACCESS_KEY, password...; not `new_tokens`, `pad_token_id` or `num_key_value_heads`), any
    substring that looks like a token (hf_..., ghp_..., sk-..., AKIA...), and any literal occurrence of the
    value of a secret-named environment variable (in a traceback, say).
    """
    env = _secret_env_values() if _env is None else _env
    if isinstance(obj, Mapping):
        def secret(k, v):  # a number is never a secret: energy_j_per_token is a measurement
            return isinstance(k, str) and _SECRET_KEY.search(k) and isinstance(v, str) and v != ""

        return {k: REDACTED if secret(k, v) else redact(v, _env=env) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, _env=env) for v in obj]
    if isinstance(obj, str):
        for value in env:
            obj = obj.replace(value, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, obj)
    return obj
