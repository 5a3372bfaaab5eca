"""No secrets in result files."""

from __future__ import annotations

import json

from llmecon.records.redact import redact
from llmecon.records.store import new_run, write_record


def test_redact_secrets_reach_no_file(tmp_path, monkeypatch, plant):
    monkeypatch.setenv("HF_TOKEN", "s3cr3t-value-from-env")
    meta = plant.meta()
    meta["config"] = {"hf_token": "hf_secret123", "env": {"HF_TOKEN": "hf_secret123", "OPENAI_API_KEY": "sk-abc",
                      "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI", "DB_PASSWORD": "hunter22"},
                      "argv": ["llmecon", "bench", "--token", "hf_secret123"]}
    run_dir = new_run(tmp_path, meta)
    rec = plant.record("c1", status="error", reasons=["401 for token hf_secret123 (env s3cr3t-value-from-env)"])
    rec["error"] = {"type": "HTTPError", "message": "token hf_secret123 refused", "traceback": "s3cr3t-value-from-env"}
    write_record(run_dir, rec)
    for path in [run_dir / "run.json", run_dir / "records" / "c1.json"]:
        text = path.read_text()
        for secret in ("hf_secret123", "s3cr3t-value-from-env", "sk-abc", "wJalrXUtnFEMI", "hunter22"):
            assert secret not in text, (path.name, secret)
    assert json.loads((run_dir / "run.json").read_text())["config"]["hf_token"] == "<redacted>"


def test_redact_keeps_ordinary_fields():
    clean = {"new_tokens": 16, "tokens_per_step": 512, "pad_token_id": 0, "num_key_value_heads": 8,
             "keys": ["a"], "hf_config": {"model_type": "llama"}, "path": "/data/hf_models/x"}
    assert redact(clean) == clean
    assert redact({"Authorization": "Bearer x", "hf_token": None}) == {"Authorization": "<redacted>", "hf_token": None}


def test_redact_keeps_numbers_under_secret_like_names():
    """energy_j_per_token ends in _token: a measurement, not a credential (a GPU record carries it)."""
    doc = {"telemetry": {"energy_j_per_token": 2.5, "hf_token": "hf_abcdefghijkl"}, "new_tokens": 16}
    out = redact(doc, _env=[])
    assert out["telemetry"]["energy_j_per_token"] == 2.5 and out["new_tokens"] == 16
    assert out["telemetry"]["hf_token"] == "<redacted>"
