"""Lift older layouts of run.json and records to the current schema: the only code that knows them.

Schema 1 -> 2 (llmecon 0.1, before the format was declared in ``schema.py``):

- ``kind`` is added ("llmecon-run" / "llmecon-record");
- a record's ``reason`` (text joined with "; ", or null) becomes the list ``reasons``;
- ``config.weights``, added during schema 1, defaults to "random" (records without it had random weights);
- ``model.name`` was the model as given, a path for a config.json: it becomes the name of the model's folder
  (schema 2 also reads a config's ``_name_or_path``, which schema 1 records do not keep);
- records written before ``work.full_model`` existed extrapolated a ``--layers k`` run by scaling the whole
  step, FLOPs, bytes and energy by ``layer_scale`` (L/k). That is made explicit: ``work.full_model`` becomes
  the built model's work times ``layer_scale`` and ``model.time_scale`` becomes ``layer_scale``, so they load
  exactly as they always did (an overstatement by the embedding and LM head's share, which schema 2 runs do
  not make). ``model.extrapolation_basis`` says so.

Schema 2 -> 3 (rounds):

- the one timing window of a schema 2 record becomes its single round: ``timing.samples_s``, ``first_call_s``,
  ``warmup_iters``, ``n_samples``, ``total_s``, ``median_s``, ``validity`` (and ``context_positions`` for decode)
  move into ``timing.rounds[0]``; its IQR and percentiles are dropped (the loader recomputes from samples);
  the stopping reason was not recorded (``stop`` null). ``timing.spread`` is null: one round has no spread
  between rounds; ``timing.step_s`` is null (the loader computes the step time from the samples, as it always
  did: now the round's mean, where schema 2 reported its median);
- ``measure`` gains ``rounds`` = 1 and ``target_rel_ci`` = null (schema 2 stopped at its minimums);
- ``work.ops`` stays absent: operator counts were not recorded.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from llmecon.costmodel.presets import config_name
from llmecon.errors import UserError
from llmecon.records.schema import SCHEMA_VERSION

SCHEMA_1_SCALING = ("schema 1 record from before full-model work was stored: step time, FLOPs, bytes and "
                    "energy scaled by layer_scale (L/k)")


def schema_version(doc: Any) -> int:
    """The document's schema_version; UserError for a missing, malformed or newer one."""
    if not isinstance(doc, dict):
        raise UserError("not a JSON object")
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"schema_version: expected a whole number >= 1, got {version!r}")
    if version > SCHEMA_VERSION:
        raise UserError(f"schema_version {version} is newer than this llmecon reads ({SCHEMA_VERSION}); "
                        "upgrade llmecon")
    return version


def upgrade_run(doc: Any) -> dict:
    """run.json of any known schema as a current-schema dict (a copy)."""
    version = schema_version(doc)
    doc = copy.deepcopy(doc)
    if version == 1:
        doc = {"schema_version": 2, "kind": "llmecon-run",
               **{k: v for k, v in doc.items() if k != "schema_version"}}
    if version <= 2:
        doc["schema_version"] = 3
    return doc


def _record_1_to_2(doc: dict) -> dict:
    out = {"schema_version": 2, "kind": "llmecon-record"}
    out.update({k: v for k, v in doc.items() if k not in ("schema_version", "reason")})
    reason = doc.get("reason")
    out["reasons"] = [r.strip() for r in reason.split(";") if r.strip()] if isinstance(reason, str) else []
    config = out.get("config")
    if isinstance(config, dict):
        config.setdefault("weights", "random")
    model, work = out.get("model"), out.get("work")
    if isinstance(model, dict) and isinstance(model.get("name"), str) and ("/" in model["name"]
                                                                          or model["name"].endswith(".json")):
        model["name"] = config_name({}, Path(model["name"]))
    if isinstance(model, dict) and isinstance(work, dict) and "full_model" not in work:
        scale = model.get("layer_scale", 1.0)
        if isinstance(scale, (int, float)) and not isinstance(scale, bool):
            flops = work.get("flops_per_step")
            bytes_step = work.get("bytes_per_step")
            work["full_model"] = {
                "flops_per_step": {c: v * scale for c, v in flops.items()} if isinstance(flops, dict) else flops,
                "bytes_per_step": bytes_step * scale if isinstance(bytes_step, (int, float)) else bytes_step,
            }
            if isinstance(work.get("hardware_flops_per_step"), (int, float)):
                work["full_model"]["hardware_flops_per_step"] = work["hardware_flops_per_step"] * scale
            model.setdefault("time_scale", scale)
            model.setdefault("extrapolation_basis", SCHEMA_1_SCALING)
    return out


_ROUND_FIELDS = ("samples_s", "first_call_s", "warmup_iters", "n_samples", "total_s", "median_s", "validity",
                 "context_positions")
_DROPPED_FIELDS = ("iqr_s", "p10_s", "p90_s")


def _record_2_to_3(doc: dict) -> dict:
    doc["schema_version"] = 3
    timing = doc.get("timing")
    if isinstance(timing, dict) and "rounds" not in timing:
        one = {k: timing[k] for k in _ROUND_FIELDS if k in timing}
        rest = {k: v for k, v in timing.items() if k not in _ROUND_FIELDS and k not in _DROPPED_FIELDS}
        doc["timing"] = {"rounds": [one], "step_s": None, "spread": None,
                         "validity": timing.get("validity"), **rest}
    return doc


def upgrade_record(doc: Any) -> dict:
    """A record of any known schema as a current-schema dict (a copy)."""
    version = schema_version(doc)
    doc = copy.deepcopy(doc)
    if version == 1:
        doc = _record_1_to_2(doc)
    if version <= 2:
        doc = _record_2_to_3(doc)
    return doc
