"""The article's inference and training tables at measured efficiency, beside the article's own.

The article assumes one flat utilisation: 21.3 % MFU for inference, 46.2 % for training. Here each
scenario's step is predicted by the calibration instead — GPT-3 decoding at a stated batch and context
on the A100 and on TPU v4; each trained model's step at a stated batch x sequence on TPU v4 — and the
predicted time is turned into the utilisation the article's own formula needs to give that time:

    MFU_article = (article FLOPs of the step: 2N or 6N per token x tokens) / (t x the article's peak)

Those utilisations go into ``costmodel.article.reproduce_article`` as overrides, so the figures come
from the article's formula and parameters, with only the utilisation measured (one cost formula).

A calibration measured on another device (a CPU, say) reaches the A100 and the TPU only with
``transfer=True``: its η's and overhead are then applied to the target's datasheet peaks, and every
row says "transferred from <hw>". Without it, targets the calibration does not cover are skipped
with that reason. All models are "one accelerator doing all the work" (as the article's
accelerator-seconds are): communication between the many chips a 175B model needs is not modelled.
"""

from __future__ import annotations

from typing import Any

from llmecon.calibration import reference
from llmecon.calibration.apply import predict_workload
from llmecon.calibration.document import Calibration
from llmecon.costmodel.presets import load_model_shape
from llmecon.costmodel.published import load_published
from llmecon.costmodel import communication as cc
from llmecon.costmodel import estimate as formulas
from llmecon.costmodel.hardware import get_accelerator
from llmecon.costmodel.article import reproduce_article
from llmecon.costmodel.estimate import achieved_utilization, utilization_problem
from llmecon.errors import UserError
from llmecon.estimate import inputs
from llmecon.estimate.serving import plan_serve

INFERENCE_TARGETS = (("aws", "a100-sxm4-40gb", "a100_peak_flops_per_s", "AWS A100"),
                     ("tpu", "tpu-v4", "tpu_v4_peak_flops_per_s", "GCP TPU v4"))
TRAINED = (("gpt3", "gpt3-175b", "GPT-3"), ("gopher", "gopher-280b", "Gopher"), ("mt_nlg", "mt-nlg-530b", "MT-NLG"),
           ("palm", "palm-540b", "PaLM"), ("chinchilla", "chinchilla-70b", "Chinchilla"))
TRAINING_TARGET = ("tpu-v4", "tpu_v4_peak_flops_per_s")
A100_TRAINING = ("a100-sxm4-40gb", "A100 (1024)")
SEARCH_TPOT_SLO_S = 0.05   # a stated target: 20 tokens/s per answer, faster than people read
PUBLISHED = "published"   # --calibration published: the published reference calibrations


def _params(reproduction) -> dict[str, float]:
    return {p.key: p.value for p in reproduction.parameters}


def _rows(base, calibrated, prefix: str, mfu_key: str, info: dict) -> list[dict]:
    out = []
    for fig in base.figures():
        if not fig.key.startswith(prefix) or mfu_key not in fig.inputs or "implied" in fig.key:
            continue
        new = calibrated.figure(fig.key).value
        out.append({"key": fig.key, "label": fig.label, "unit": fig.unit, "article": fig.value, "calibrated": new,
                    "difference": new / fig.value - 1} | info)
    return out


def _calibrated_mfu(est: dict, article_flops: float, article_peak: float, target: str, mfu_article: float,
                    what: str, skipped: list[str]) -> dict | None:
    """The MFU a calibrated step implies in the article's own FLOP count and peak, with what the rows say
    about it; None (and a reason in skipped) when it falls outside (0, 1]."""
    mfu = achieved_utilization(article_flops, est["step_time_s"], article_peak)
    problem = utilization_problem(mfu)
    if problem:
        skipped.append(f"{what}: the calibration implies an MFU of the article's peak that is {problem}; not priced")
        return None
    return {"target": target, "mfu_article": mfu_article, "mfu_calibrated": mfu, "regime": est["regime"],
            "source": est["label"], "transferred": est["transferred"], "extrapolated": est["extrapolated"],
            "effective_mfu_calibration_convention": est["effective_mfu"],
            "heldout_median_rel_error": est["heldout_median_rel_error"],
            "heldout_by_model_median_rel_error": est["heldout_by_model_median_rel_error"],
            "sources": est.get("sources", [])}


def calibrated_article(calib: Calibration, *, transfer: bool = False, dtype: str = "bf16", **scenario) -> dict:
    """The article's inference and training figures at the article's MFU and at calibrated efficiency.

    Returns {calibration, assumptions, tables: [{key, title, rows: [{key, label, unit, article, calibrated,
    difference, mfu_article, mfu_calibrated, regime, source, transferred, ...}]}], basis, skipped: [reasons]};
    UserError if no scenario could be calibrated. ``scenario``: inference_batch, context_len, train_batch,
    train_seq_len, a100_count (see `_tables`)."""
    measured_on = sorted({f.hardware for f in calib.fits} | {f.hardware_id for f in calib.fits} - {None})
    targets = [hw for _, hw, _, _ in INFERENCE_TARGETS] + [TRAINING_TARGET[0], A100_TRAINING[0]]
    if not transfer and not set(targets) & set(measured_on):
        raise UserError(f"the calibration was measured on {', '.join(measured_on)}; the article's accelerators "
                        f"({', '.join(sorted(set(targets)))}) need --transfer (its efficiencies applied to their "
                        f"datasheet peaks, labelled as such)")

    def predict(shape, phase, batch, length, hw):
        return predict_workload(calib, shape, phase, batch, length, hardware=hw, dtype=dtype, transfer=transfer)

    def plan(**kw):
        return plan_serve(calibration=calib, transfer=transfer, dtype=dtype, **kw)

    doc = _tables(predict, dtype, plan, **scenario)
    return {"calibration": {"basis": calib.basis, "flop_convention": calib.flop_convention,
                            "run_ids": calib.provenance.run_ids, "device_names": calib.provenance.device_names},
            **doc, "assumptions": doc["assumptions"] | {"transfer": transfer}}


def published_article(*, dtype: str = "bf16", **scenario) -> dict:
    """As `calibrated_article`, each accelerator at its published reference (calibration.reference: its own, or the
    nearest one transferred), in that reference's dtype where ``dtype`` has none (each row's basis says which);
    rows carry the reference and its sources."""
    def predict(shape, phase, batch, length, hw):
        ref = reference.choose(hw, phase, preferred_dtype=dtype)
        est = predict_workload(ref.calibration, shape, phase, batch, length, hardware=hw, dtype=ref.dtype,
                               transfer=ref.transferred)
        return est | {"label": ref.describe() + f", priced in {ref.dtype}", "sources": list(ref.fit.sources)}

    def plan(**kw):
        return plan_serve(**kw)

    doc = _tables(predict, f"{dtype} or the reference's dtype", plan, **scenario)
    sources = sorted({s for t in doc["tables"] for r in t["rows"] for s in r["sources"]})
    return {"calibration": {"basis": "published", "sources": sources}, **doc, "published_mfu": published_mfu()}


def published_mfu() -> list[dict]:
    """The sheet's MFU points for the article's trained models, as published (a reference fit needs three shapes of
    one engine, accelerator and dtype; these single points are shown beside the article's 46.2 % as they are)."""
    models = {preset: name for _, preset, name in TRAINED}
    return [{"model": models[m.model], "accelerator": m.accelerator_id, "accelerators": m.accelerator_count,
             "mfu": m.value / 100, "engine": m.engine, "source": m.source, "note": m.note}
            for m in load_published() if m.unit == "%MFU" and m.model in models]


def _tables(predict, dtype: str, plan, *, inference_batch: int = 16, context_len: int = 1024, train_batch: int = 8,
            train_seq_len: int = 2048, a100_count: int = 1024, search_tpot_slo_s: float = SEARCH_TPOT_SLO_S) -> dict:
    """The scenarios, each step predicted by ``predict(shape, phase, batch, length, hardware)`` (a predict_workload
    dict): GPT-3 decoding at ``inference_batch`` x ``context_len`` on the article's A100 and TPU v4; the five models
    trained in steps of ``train_batch`` x ``train_seq_len`` on TPU v4 (the article's table); GPT-3 trained on
    ``a100_count`` A100s at the article's A100 price (not a table of the article: its method, on the chips GPT-3-era
    runs used); the ChatGPT-equivalent search query served by ``plan(**plan_serve options)`` at a TPOT target."""
    base = reproduce_article()
    p = _params(base)
    skipped: list[str] = []
    tables = []

    def attempt(fn, what):
        try:
            return fn()
        except UserError as exc:
            skipped.append(f"{what}: {exc}")
            return None

    rows = []
    for short, hw, peak_key, name in INFERENCE_TARGETS:
        est = attempt(lambda: predict(load_model_shape("gpt3-175b"), "decode", inference_batch, context_len, hw),
                      f"GPT-3 inference on {hw}")
        if est is None:
            continue
        article_flops = p["inference_flops_per_param_per_token"] * p["gpt3_params"] * est["tokens_per_step"]
        info = _calibrated_mfu(est, article_flops, p[peak_key], name, p["mfu_inference"],
                               f"GPT-3 inference on {hw}", skipped)
        if info is not None:
            rows += _rows(base, reproduce_article({"mfu_inference": info["mfu_calibrated"]}),
                          f"inference.{short}.", "mfu_inference", info)
    if rows:
        tables.append({"key": "inference", "rows": rows,
                       "title": f"GPT-3 inference per 1K tokens: article (21.3% MFU) vs calibrated "
                                f"(decode, batch {inference_batch}, context {context_len:,}, {dtype})"})

    rows = []
    hw, peak_key = TRAINING_TARGET
    for short, preset, name in TRAINED:
        n = p[f"{short}_params"]
        est = attempt(lambda: predict(load_model_shape(preset), "train", train_batch, train_seq_len, hw),
                      f"{name} training on {hw}")
        if est is None:
            continue
        article_flops = p["training_flops_per_param_per_token"] * n * train_batch * train_seq_len
        info = _calibrated_mfu(est, article_flops, p[peak_key], name, p["mfu_training"],
                               f"{name} training on {hw}", skipped)
        if info is not None:
            rows += _rows(base, reproduce_article({"mfu_training": info["mfu_calibrated"]}),
                          f"training.{short}.", "mfu_training", info)
    if rows:
        tables.append({"key": "training", "rows": rows,
                       "title": f"Training cost on TPU v4: article (46.2% MFU) vs calibrated "
                                f"(steps of {train_batch} x {train_seq_len:,} tokens, {dtype})"})
    a100 = attempt(lambda: _a100_training(predict, p, a100_count, train_batch, train_seq_len, skipped),
                   f"GPT-3 training on {A100_TRAINING[0]}")
    if a100:
        tables.append({"key": "training_a100", "rows": a100,
                       "title": f"GPT-3 training on {a100_count:,} A100s at the article's A100 price: the article's "
                                f"46.2% MFU vs calibrated (steps of {train_batch} x {train_seq_len:,} tokens)"})
    search = attempt(lambda: _search_query(plan, p, search_tpot_slo_s), "the search query on an A100")
    if search:
        tables.append({"key": "search", "rows": search,
                       "title": f"A ChatGPT-equivalent search query on a p4d node (8 A100s): the article's flat 21.3% "
                                f"MFU vs the serving plan at a {search_tpot_slo_s * 1e3:g} ms TPOT target"})
    if not tables:
        raise UserError("no article scenario could be calibrated: " + "; ".join(skipped))
    return {
        "assumptions": {"dtype": dtype,
                        "inference": {"model": "gpt3-175b", "phase": "decode", "batch_size": inference_batch,
                                      "context_len": context_len},
                        "training": {"hardware": hw, "batch_size": train_batch, "seq_len": train_seq_len},
                        "training_a100": {"hardware": A100_TRAINING[0], "accelerators": a100_count},
                        "search": {"hardware": INFERENCE_TARGETS[0][1], "tpot_slo_s": search_tpot_slo_s,
                                   "note": "each of the query's samples is a request of the 50-word prompt and a "
                                           "400-word answer; the p4d node's 8 A100s as ideal 8-way tensor "
                                           "parallelism (the article's one-accelerator accounting; memory and "
                                           "communication not modelled); steady state of continuous batching "
                                           "(docs/serving.md)"},
                        "note": "one accelerator doing all the work, as the article's accelerator-seconds; "
                                "multi-chip communication not modelled"},
        "tables": tables,
        "basis": describe_source([r for t in tables for r in t["rows"]]),
        "skipped": skipped,
    }


def _search_query(plan, p: dict, tpot_slo_s: float) -> list[dict]:
    """The article's ChatGPT-equivalent query (a 50-word prompt, 5 sampled answers of 400 words): its flat cost, its
    billed tokens x the article's $/1K tokens at 21.3 % on a p4d A100, against the serving plan's, 5 requests of the
    prompt and one answer each, at the cheapest concurrency that meets ``tpot_slo_s`` on the article's p4d node.

    GPT-3 does not fit one A100, so the node's 8 A100s serve it together, taken as ideal 8-way tensor parallelism:
    the article's own accounting (accelerator-seconds, "one accelerator doing all the work", memory not checked), in
    which the node's step is 1/8 of the one-accelerator step. The node's TPOT target is then 8 x ``tpot_slo_s`` on
    the accelerator-equivalent; communication between the 8 is not modelled (it would only slow the node)."""
    words = p["words_per_1k_tokens"] / 1000   # words per token
    samples = int(p["chatgpt_samples_per_query"])
    node = int(p["aws_p4d_accelerators"])
    prompt, answer = round(p["chatgpt_prompt_words"] / words), round(p["chatgpt_response_words"] / words)
    usd_hour = p["aws_p4d_usd_per_hour"] / node
    out = plan(model="gpt3-175b", hardware=INFERENCE_TARGETS[0][1], prompt_tokens=prompt, output_tokens=answer,
               tpot_slo=tpot_slo_s * node, usd_per_hour=usd_hour, check_memory=False)
    best = out["plan"]
    if best is None:
        raise UserError(f"no concurrency meets a {tpot_slo_s * 1e3:g} ms TPOT on an {node}-A100 node "
                        f"({out['binding']})")
    flat = reproduce_article()
    billed_tokens = flat.figure("search.chatgpt.tokens").value
    article_usd = billed_tokens / 1000 * flat.figure("inference.aws.usd_per_1k_tokens").value
    planned = samples * best["usd_per_request"]
    mfu = p["inference_flops_per_param_per_token"] * p["gpt3_params"] * best["output_tokens_per_s"] / \
        p["a100_peak_flops_per_s"]
    info = {"target": f"{node} x A100, TPOT ≤ {tpot_slo_s * 1e3:g} ms", "mfu_article": p["mfu_inference"],
            "mfu_calibrated": mfu, "regime": best["decode_regime"], "source": out["decode"]["label"],
            "sources": sorted(set(out["decode"]["sources"]) | set(out["prefill"]["sources"])),
            "transferred": out["decode"]["transferred"] or out["prefill"]["transferred"],
            "extrapolated": out["prefill"]["extrapolated"],
            "heldout_median_rel_error": out["decode"]["heldout_median_rel_error"],
            "heldout_by_model_median_rel_error": out["decode"]["heldout_by_model_median_rel_error"],
            "concurrency": best["concurrency"], "tpot_s": best["tpot_s"] / node,
            "ttft_p90_s": best["ttft_p90_s"] / node, "binding": out["binding"]}
    return [{"key": "search.chatgpt.usd_per_query", "label": f"ChatGPT-equivalent query: {billed_tokens:,.0f} tokens at "
             f"$/1K (article) vs {samples} requests of {prompt} + {answer} tokens, {best['concurrency']:,} in flight "
             f"on the {node}-A100 node", "unit": "USD", "article": article_usd, "calibrated": planned,
             "difference": planned / article_usd - 1} | info]


def _a100_training(predict, p: dict, count: int, batch: int, seq_len: int, skipped: list[str]) -> list[dict]:
    """GPT-3's training FLOPs on ``count`` A100s at the article's p4d price per A100-hour: A100-hours, $ and days at
    the article's 46.2 % and at the predicted MFU (the article's formula, costmodel.estimate.training_cost)."""
    hw, name = A100_TRAINING
    est = predict(load_model_shape("gpt3-175b"), "train", batch, seq_len, hw)
    article_flops = p["training_flops_per_param_per_token"] * p["gpt3_params"] * batch * seq_len
    info = _calibrated_mfu(est, article_flops, p["a100_peak_flops_per_s"], name, p["mfu_training"],
                           f"GPT-3 training on {hw}", skipped)
    if info is None:
        return []
    flops = p["training_flops_per_param_per_token"] * p["gpt3_params"] * p["gpt3_training_tokens"]
    usd_hour = p["aws_p4d_usd_per_hour"] / p["aws_p4d_accelerators"]

    def cost(mfu):
        return formulas.training_cost(flops, p["a100_peak_flops_per_s"], mfu, usd_hour, num_accelerators=count)

    article_run, run = cost(p["mfu_training"]), cost(info["mfu_calibrated"])
    figures = (("accelerator_hours", "A100-hours", "h"), ("usd_total", "training cost", "USD"),
               ("wall_clock_days", f"days on {count:,} A100s", "days"))
    return [{"key": f"training_a100.gpt3.{k}", "label": f"GPT-3 {label}", "unit": unit, "article": article_run[k],
             "calibrated": run[k], "difference": run[k] / article_run[k] - 1} | info for k, label, unit in figures]


def describe_source(rows: list[dict[str, Any]]) -> list[str]:
    """One line per distinct provenance of the calibrated rows, naming the targets it covers (for captions)."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        by_model = r.get("heldout_by_model_median_rel_error")
        what = (f"{r['source']}, {r['regime']}, held-out error {r['heldout_median_rel_error']:.1%} by shape"
                + (f", {by_model:.1%} by model" if by_model is not None else "")
                + (" (extrapolated beyond the measured range)" if r["extrapolated"] else ""))
        targets = groups.setdefault(what, [])
        if r["target"] not in targets:
            targets.append(r["target"])
    return [f"{', '.join(targets)}: {what}" for what, targets in groups.items()]


def article(calibration=None, *, transfer: bool = False) -> dict:
    """The article's tables recomputed, each figure beside the article's printed one, as `llmecon article
    --json`; with a calibration (a file or a Calibration), also its inference and training tables at calibrated
    efficiency under "calibrated" (``transfer=True`` to apply a calibration measured elsewhere); with
    ``calibration="published"``, at the published reference calibrations' efficiency (`published_article`).

    >>> doc = article()
    >>> [f["printed_text"] for t in doc["tables"] for f in t["rows"] if f["key"] == "training.gpt3.usd"]
    ['$1.4M']
    """
    doc = reproduce_article().to_dict() | {"communication": gpt3_a100_communication()}
    if calibration is None:
        if transfer:
            raise UserError("--transfer only applies with --calibration FILE")
        return doc
    if calibration == PUBLISHED:
        if transfer:
            raise UserError("--transfer does not go with --calibration published: each accelerator takes its own "
                            "published reference, or the nearest one transferred and labelled")
        return doc | {"calibrated": published_article()}
    return doc | {"calibrated": calibrated_article(inputs.calibration(calibration), transfer=transfer)}


# The Megatron-LM 3D layout for GPT-3 175B on 1024 A100s (Narayanan et al. 2021, arXiv:2104.04473): batch 1536 of
# 2048-token sequences on 1024 GPUs is the run of its §5.1 training-time estimate; tensor parallelism 8 (one DGX
# A100 node, as in every row of its Table 1 from 18.4B up), pipeline 16 (6 of the 96 layers per stage), data 8,
# microbatch 1. The paper publishes no split for this run (Table 1 has no 175B row; its 145.6B row on 1536 GPUs uses
# PP 8, its 310.1B row on 1920 GPUs PP 16): the pipeline and data degrees are this tool's assumption.
GPT3_1024_LAYOUT = {"tp": 8, "pp": 16, "dp": 8, "global_batch": 1536, "microbatch": 1, "seq_len": 2048}
GPT3_1024_SOURCE = ("Narayanan et al. 2021, Efficient Large-Scale Language Model Training on GPU Clusters Using "
                    "Megatron-LM, arXiv:2104.04473 (batch 1536 on 1024 A100s, §5.1); it publishes no split for this run: "
                    "TP 8 in a DGX node as in its Table 1, PP 16 x DP 8 and microbatch 1 assumed")


def gpt3_a100_communication(layout: dict | None = None, overlap: float = 0.0) -> dict:
    """GPT-3 175B trained on 1024 A100s in a Megatron 3D layout: the share of an iteration the communication model
    gives to exposed communication and to the pipeline bubble, at the article's flat 46.2 % MFU for the compute and
    the DGX A100's datasheet links (NVLink inside a node, HDR InfiniBand across), ``overlap`` 0 (none hidden)."""
    lay = {**GPT3_1024_LAYOUT, **(layout or {})}
    p = _params(reproduce_article())
    shape = load_model_shape("gpt3-175b")
    acc = get_accelerator(A100_TRAINING[0])
    ranks = lay["tp"] * lay["pp"] * lay["dp"]
    flops = p["training_flops_per_param_per_token"] * p["gpt3_params"] * lay["global_batch"] * lay["seq_len"]
    compute_s = flops / ranks / (p["a100_peak_flops_per_s"] * p["mfu_training"])
    step = cc.three_d_step(shape, **lay, dtype="bf16", compute_s=compute_s, gpus_per_node=acc.gpus_per_node,
                           nvlink_bytes_per_s=acc.nvlink_bytes_per_s, network_bytes_per_s=acc.network_bytes_per_s,
                           overlap=overlap)
    return {"model": "gpt3-175b", "hardware": acc.id, "accelerators": ranks, "layout": lay,
            "layout_source": GPT3_1024_SOURCE, "mfu_article": p["mfu_training"],
            "mfu_at_k": p["mfu_training"] * step["compute_time_s"] / step["step_time_s"], **step,
            "assumptions": f"compute at the article's flat {p['mfu_training']:.1%} MFU; datasheet links of a DGX A100 "
                           "(NVLink 600 GB/s bidirectional -> 300 GB/s bus, 8 x HDR 200 Gb/s); fp32 gradients, bf16 "
                           f"activations; overlap {overlap:.0%} (no communication hidden behind compute)"}
