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

Schema 3 -> 4 (the GPU path):

- holding the power limit (NVML's ``sw_power_cap``) is no longer throttling: it leaves
  ``telemetry.throttle_reasons`` and the ``throttled:`` warnings (a warning left with no reason goes);
  ``power_capped_fraction`` stays null, since schema 3 kept only whether any sample saw it;
- energy per token needs ``MIN_ENERGY_WINDOW_S`` of telemetry window: an older record with a shorter window
  keeps its energy but loses ``energy_j_per_token``, with ``energy_reason`` saying why. (Schema 3 decode energy
  also included the untimed prompt re-prefills in its mean power; that cannot be undone.)
- the new fields (device clock, kernel busy time, launch_bound, compute_mode) are null: not recorded.

Schema 4 -> 5 (the bench-only phase ``generate``): nothing changes. Its new round fields ``ttft_samples_s`` and
``tpot_samples_s`` are null for every other phase, which is all a schema 4 record holds.

Schema 5 -> 6 (beyond one device): nothing changes. Every older record ran on one device: its config's
``parallel`` is none and ``world_size`` 1 (the defaults), and it has no ``distributed`` block; run.json neither.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from llmecon.costmodel.presets import config_name
from llmecon.errors import UserError
from llmecon.records.schema import MIN_ENERGY_WINDOW_S, SCHEMA_VERSION

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
    doc["schema_version"] = SCHEMA_VERSION  # 1 -> 2 -> ... -> 6 add only optional fields to run.json
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


POWER_CAP = "sw_power_cap"


def _without_power_cap(warning: str) -> str | None:
    if not warning.startswith("throttled:"):
        return warning
    rest = [r for r in warning[len("throttled:"):].split(",") if r and r != POWER_CAP]
    return "throttled:" + ",".join(rest) if rest else None


def _record_3_to_4(doc: dict) -> dict:
    doc["schema_version"] = 4
    tele = doc.get("telemetry")
    if isinstance(tele, dict):
        if isinstance(tele.get("throttle_reasons"), list):
            tele["throttle_reasons"] = [r for r in tele["throttle_reasons"] if r != POWER_CAP]
        window = tele.get("window_s")
        if tele.get("energy_j_per_token") is not None and not (isinstance(window, (int, float))
                                                               and window >= MIN_ENERGY_WINDOW_S):
            tele["energy_j_per_token"] = None
            tele["energy_reason"] = (f"schema 3 record: telemetry window {window} s under {MIN_ENERGY_WINDOW_S:g} s "
                                     "gives no energy per token")
    timing = doc.get("timing")
    blocks = [timing.get("validity")] if isinstance(timing, dict) else []
    if isinstance(timing, dict) and isinstance(timing.get("rounds"), list):
        blocks += [r.get("validity") for r in timing["rounds"] if isinstance(r, dict)]
    for block in blocks:
        if isinstance(block, dict) and isinstance(block.get("warnings"), list):
            block["warnings"] = [w for w in (_without_power_cap(x) if isinstance(x, str) else x
                                             for x in block["warnings"]) if w is not None]
    return doc


def upgrade_record(doc: Any) -> dict:
    """A record of any known schema as a current-schema dict (a copy)."""
    version = schema_version(doc)
    doc = copy.deepcopy(doc)
    if version == 1:
        doc = _record_1_to_2(doc)
    if version <= 2:
        doc = _record_2_to_3(doc)
    if version <= 3:
        doc = _record_3_to_4(doc)
    if version <= 4:
        doc["schema_version"] = 5  # 4 -> 5: generate's new round fields are null for every other phase
    if version <= 5:
        doc["schema_version"] = 6  # 5 -> 6: one device: parallel none, world size 1, no distributed block
    return doc
