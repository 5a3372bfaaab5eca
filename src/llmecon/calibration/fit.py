"""Fit the step-time model (``model.py``) per (hardware, dtype, phase) from bench records.

Input: the tidy frame of ``records.load.load_results``; only rows with ``valid`` true are used.

Which terms each fit has (a term is fitted only when the data can resolve it):
- compute: always; F = ``flops_per_step_<convention>`` (``executed`` by default — the FLOPs the kernels
  ran, so η_compute is a true hardware efficiency; with another convention η is relative to it, and
  estimates must count FLOPs the same way, which ``apply`` does).
- memory: when every row has ``bytes_per_step`` (decode: active weights + KV cache read per step) and
  a reference bandwidth exists. For prefill and train the records carry no byte count, and we do not
  invent one: "weights read once per step" is the same number for every shape of one model, so it
  cannot be told apart from the overhead t0; and at the token counts of a prefill or a training step
  (hundreds to thousands per step) the arithmetic intensity is far above any ridge point, so weight
  traffic is a small share of the step. Those phases are fitted compute + overhead; whatever weight
  traffic there is lands in t0 (and a prefill of a few tokens on a large model will be labelled
  overhead-bound where it is really memory-bound — a stated limit).
  A memory column that is collinear with the others (constant across rows) is dropped the same way.
- overhead t0: always.
- overhead per layer τ (seconds per decoder layer, L = ``num_hidden_layers`` of the full model): when the
  rows hold at least two depths, every row's depth is known and the L column is not collinear with the
  others; otherwise τ is absent, as a collinear memory column is (one depth: t0 and L·τ are one number).
  ``per_layer=False`` (``calibrate --no-per-layer-overhead``) leaves it out everywhere.

Weighting: relative error — minimise Σ ((t̂ − t) / t)², so a 1 ms and a 1 s step count alike (for
small errors this equals least squares on log t). Constraints: t0 >= 0, and η_compute, η_memory <= 1
— no term runs faster than its reference peak (a datasheet peak is an upper bound by definition;
rows faster than the measured GEMM ceiling are already invalid in the loader). A term the rows do
not resolve (a tiny model on a CPU is all overhead) then sits at its bound, η = 1, with a warning
in the file: an optimistic but physical value, never an η of 40. One limit of the bound: a working
set that fits in a CPU cache can stream faster than the measured DRAM copy ceiling; η_memory stays
at 1 and the held-out error shows the misfit. The problem is solved exactly by enumerating active
sets (<= 15 small least-squares solves).

Held-out errors, two of them:
- leave-one-shape-out: each distinct shape (model, batch, seq_len, new_tokens; and the accelerators a published
  training point ran on, whose step per accelerator depends on them) is predicted by a fit on
  all the other shapes; repeated runs of one shape are held out together, so a repeat cannot leak into
  its own prediction. It says how well the fit predicts the measured models at shapes it did not see.
- leave-one-model-out, when the group has two or more models: each model is predicted by a fit on the
  others. It says how well the fit carries to a model it did not see — which is what an estimate for
  another model does. A fold whose training rows hold one depth fits no τ (see above), so with two
  depths this tests a constant overhead carried across depths; a third depth is needed to test τ.
The refusal threshold applies to the first only: a fit is refused when it has fewer than 3 distinct
shapes, or when the median leave-one-shape-out error exceeds ``max_heldout_error`` (50 % by default)
unless ``force``. A leave-one-model-out error above the threshold is a warning in the file, printed by
``calibrate`` and the report, not a refusal: the fit still describes the models it measured, and refusing
it would throw that away; the figure tells a reader how far to trust it for another model
(docs/measuring.md §12). Refused groups are listed with their reason; if nothing can be fitted,
``UserError``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from llmecon.calibration.apply import predict
from llmecon.calibration.communication import fit_overlap
from llmecon.calibration.document import Calibration, Fit, Provenance, Refused
from llmecon.calibration.model import StepModel
from llmecon.errors import UserError
from llmecon.records.load import Results
from llmecon.records.schema import Run
from llmecon.vocab import CALIBRATION_CONVENTION, CONVENTIONS, PHASES

MIN_SHAPES = 3
DEFAULT_MAX_HELDOUT_ERROR = 0.5
SHAPE_COLUMNS = ("model", "batch_size", "seq_len", "new_tokens")


def nnls_relative(X: np.ndarray, t: np.ndarray, lower: np.ndarray | None = None) -> np.ndarray:
    """θ >= lower minimising Σ ((X θ − t) / t)²: exact, by enumerating supports (X has <= 4 columns).

    With θ = lower + θ', this is a non-negative least-squares problem in θ'; its optimum is the
    unconstrained least-squares solution on one of the 2^k supports with θ' >= 0, the one with the
    smallest cost."""
    lower = np.zeros(X.shape[1]) if lower is None else np.asarray(lower, float)
    A = X / t[:, None]
    y = 1.0 - A @ lower
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    A = A / norms
    best, best_cost = np.zeros(X.shape[1]), float(np.sum(y**2))
    for k in range(1, X.shape[1] + 1):
        for support in itertools.combinations(range(X.shape[1]), k):
            cols = list(support)
            coef, *_ = np.linalg.lstsq(A[:, cols], y, rcond=None)
            if np.any(coef < 0):
                continue
            theta = np.zeros(X.shape[1])
            theta[cols] = coef
            cost = float(np.sum((A @ theta - y) ** 2))
            if cost < best_cost - 1e-15:
                best, best_cost = theta, cost
    return lower + best / norms


def _median_or_none(values) -> float | None:
    v = [float(x) for x in values
         if x is not None and isinstance(x, (int, float)) and math.isfinite(float(x)) and x > 0]
    return float(np.median(v)) if v else None


def _reference_peaks(rows) -> tuple[float | None, str | None, float | None, str | None]:
    """Datasheet peaks when every row has them, else the measured ceilings (recorded as such)."""
    def pick(datasheet_col, ceiling_col):
        datasheet = _median_or_none(rows[datasheet_col]) if datasheet_col in rows else None
        if datasheet is not None and rows[datasheet_col].notna().all():
            return datasheet, "datasheet"
        ceiling = _median_or_none(rows[ceiling_col]) if ceiling_col in rows else None
        if ceiling is not None:
            return ceiling, "measured_ceiling"
        return None, None

    p, p_src = pick("peak_flops_per_s", "ceiling_flops_per_s")
    w, w_src = pick("peak_bytes_per_s", "ceiling_bytes_per_s")
    return p, p_src, w, w_src


def _design(rows, flops_col: str, use_memory: bool, use_layers: bool) -> np.ndarray:
    """Columns F, [B], 1, [L]: θ = (1/(P·η_c), [1/(W·η_m)], t0, [τ])."""
    cols = [rows[flops_col].to_numpy(float)]
    if use_memory:
        cols.append(rows["bytes_per_step"].to_numpy(float))
    cols.append(np.ones(len(rows)))
    if use_layers:
        cols.append(_layers(rows))
    return np.column_stack(cols)


def _layers(rows) -> np.ndarray:
    """The decoder layers of each row's (full) model, NaN where unknown."""
    if "num_hidden_layers" not in rows:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows["num_hidden_layers"], errors="coerce").to_numpy(float, na_value=np.nan)


def _rel_errors(X, theta, t) -> np.ndarray:
    return np.abs(X @ theta - t) / t


def _fold_fit(X, t, lower, train, layer_col: int | None) -> np.ndarray:
    """θ fitted on the rows ``train``, with the same terms as the full fit except τ where the training rows hold
    one depth only (t0 and L·τ cannot be told apart there: τ is left out, 0, as the full fit would)."""
    cols = list(range(X.shape[1]))
    if layer_col is not None and len(np.unique(X[train, layer_col])) < 2:
        cols.remove(layer_col)
    theta = np.zeros(X.shape[1])
    theta[cols] = nnls_relative(X[train][:, cols], t[train], lower[cols])
    return theta


def _held_out(X, t, lower, groups, layer_col) -> np.ndarray:
    """Each row's relative error when its group (a shape, or a model) is predicted by a fit on the others."""
    held = np.empty(len(t))
    for g in sorted(set(groups)):
        test = groups == g
        held[test] = _rel_errors(X[test], _fold_fit(X, t, lower, ~test, layer_col), t[test])
    return held


def fit_group(rows, *, convention: str = CALIBRATION_CONVENTION, max_heldout_error: float = DEFAULT_MAX_HELDOUT_ERROR,
              force: bool = False, per_layer: bool = True) -> dict:
    """Fit one (hardware, dtype, phase) group of valid rows. Returns the calibration entry, or an entry
    with ``refused`` (a reason) when the rows cannot support a fit. ``per_layer=False`` leaves τ out even
    where the rows could resolve it (one t0 for every depth, as schema 2 fitted)."""
    flops_col = f"flops_per_step_{convention}"
    t = rows["step_time_s"].to_numpy(float)
    F = rows[flops_col].to_numpy(float) if flops_col in rows else np.full(len(rows), np.nan)
    shape_columns = [c for c in (*SHAPE_COLUMNS, "accelerator_count") if c in rows]   # published training at scale
    shapes = np.array(["|".join(map(str, key)) for key in rows[shape_columns].itertuples(index=False)])
    n_shapes = len(set(shapes))
    entry: dict[str, Any] = {"n_rows": int(len(rows)), "n_shapes": int(n_shapes)}
    if n_shapes < MIN_SHAPES:
        return entry | {"refused": f"too few rows: {n_shapes} distinct shape(s), need at least {MIN_SHAPES} "
                                   f"(bench more batch sizes or sequence lengths)"}
    if not (np.all(np.isfinite(t)) and np.all(t > 0)):
        return entry | {"refused": "step_time_s is missing or not positive in some rows"}
    if not (np.all(np.isfinite(F)) and np.all(F > 0)):
        return entry | {"refused": f"{flops_col} is missing or not positive in some rows"}
    P, P_src, W, W_src = _reference_peaks(rows)
    if P is None:
        return entry | {"refused": "no reference FLOP/s: neither a datasheet peak nor a measured ceiling"}

    B = rows["bytes_per_step"].to_numpy(float) if "bytes_per_step" in rows else np.full(len(rows), np.nan)
    L = _layers(rows)
    known_depths = bool(np.all(np.isfinite(L)) and np.all(L >= 1))
    use_memory = bool(W is not None and np.all(np.isfinite(B)) and np.all(B > 0))
    if use_memory and np.linalg.matrix_rank(_design(rows, flops_col, True, False) / t[:, None], tol=1e-9) < 3:
        use_memory = False   # bytes collinear with FLOPs or constant: not resolvable from these rows
    use_layers = bool(per_layer and known_depths and len(np.unique(L)) >= 2)
    if use_layers:
        X = _design(rows, flops_col, use_memory, True)
        if np.linalg.matrix_rank(X / t[:, None], tol=1e-9) < X.shape[1]:
            use_layers = False   # the depth moves with the other columns in these rows: not resolvable
    X = _design(rows, flops_col, use_memory, use_layers)
    layer_col = X.shape[1] - 1 if use_layers else None
    # no term runs faster than its reference peak: seconds per FLOP >= 1/P, per byte >= 1/W (η <= 1); t0, τ >= 0
    lower = np.array([1.0 / P] + ([1.0 / W] if use_memory else []) + [0.0] + ([0.0] if use_layers else []))
    theta = nnls_relative(X, t, lower)
    a, b = theta[0], (theta[1] if use_memory else None)
    t0 = theta[2 if use_memory else 1]
    tau = float(theta[layer_col]) if use_layers else None

    held = _held_out(X, t, lower, shapes, layer_col)
    in_sample = _rel_errors(X, theta, t)
    heldout = {"method": "leave-one-shape-out", "median_rel_error": float(np.median(held)),
               "max_rel_error": float(np.max(held)), "n_folds": int(n_shapes)}
    models = np.array([str(m) for m in rows["model"]])
    by_model = None
    if len(set(models)) >= 2:
        held_m = _held_out(X, t, lower, models, layer_col)
        by_model = {"method": "leave-one-model-out", "median_rel_error": float(np.median(held_m)),
                    "max_rel_error": float(np.max(held_m)), "n_folds": len(set(models)),
                    "by_fold": {m: float(np.median(held_m[models == m])) for m in sorted(set(models))}}

    eta_c = min(1.0, float(1.0 / (a * P)))
    eta_m = min(1.0, float(1.0 / (b * W))) if use_memory else None
    terms = ["compute"] + ["memory"] * use_memory + ["overhead"] + ["overhead_per_layer"] * use_layers
    warnings: list[str] = []
    for name, eta, src in (("eta_compute", eta_c, P_src), ("eta_memory", eta_m, W_src)):
        if eta is not None and eta >= 1 - 1e-9:
            warnings.append(f"{name} is at its bound (1 = the {src.replace('_', ' ')}): these rows do not resolve "
                            f"that term, so it is taken at its fastest; predictions where it dominates are optimistic")
    if not use_memory and "bytes_per_step" in rows and rows["bytes_per_step"].notna().all():
        warnings.append("memory term dropped: bytes per step do not vary independently of FLOPs in these rows")
    depths = sorted({int(x) for x in L if np.isfinite(x)})
    if per_layer and known_depths and len(depths) >= 2 and not use_layers:
        warnings.append("per-layer overhead dropped: the depth does not vary independently of the work in these rows")
    if per_layer and len(set(models)) >= 2 and len(depths) == 1:
        warnings.append(f"every model has {depths[0]} layers: the overhead t0 holds for that depth only")
    if by_model is not None:
        if use_layers and len(depths) == 2:
            warnings.append("leave-one-model-out with two depths: each fold has one depth, so it fits t0 without "
                            "τ; the figure tests a constant overhead carried across depths (bench a third depth "
                            "to test τ)")
        if by_model["median_rel_error"] > max_heldout_error:
            warnings.append(f"does not transfer between models: median leave-one-model-out error "
                            f"{by_model['median_rel_error']:.0%} > {max_heldout_error:.0%}; predictions for a model "
                            f"not measured here are that uncertain")
    model = StepModel(eta_c, eta_m, float(t0), P, W, tau)
    entry |= {
        "terms": terms,
        "eta_compute": eta_c, "eta_memory": eta_m, "t0_s": float(t0), "tau_s_per_layer": tau,
        "peak_flops_per_s": P, "peak_flops_source": P_src,
        "peak_bytes_per_s": W, "peak_bytes_source": W_src,
        "regime_boundaries": model.boundaries(depths[0] if len(depths) == 1 else None),
        "heldout": heldout,
        "heldout_by_model": by_model,
        "fit_rel_error": {"median": float(np.median(in_sample)), "max": float(np.max(in_sample))},
        "range": {"flops_per_step": [float(F.min()), float(F.max())],
                  "bytes_per_step": [float(B.min()), float(B.max())] if use_memory else None,
                  "batch_size": _int_range(rows["batch_size"]), "seq_len": _int_range(rows["seq_len"]),
                  "layers": [depths[0], depths[-1]] if known_depths else None},
        "models": sorted(set(models)),
        "forced": False,
        "warnings": warnings,
    }
    if heldout["median_rel_error"] > max_heldout_error:
        msg = (f"too noisy: median held-out error {heldout['median_rel_error']:.0%} > "
               f"{max_heldout_error:.0%} (max {heldout['max_rel_error']:.0%})")
        if not force:
            worst = np.argsort(-held)[:3]
            return entry | {"refused": msg + "; rerun the bench, or pass --force to keep it",
                            "rows": [f"{_shape(rows.iloc[i])}: held-out error {held[i]:.0%}{_noise(rows.iloc[i])}"
                                     for i in worst]}
        entry["forced"] = True
        entry["warnings"].append(msg + " (kept with --force)")
    return entry


def _shape(row) -> str:
    return f"{row['model']} b={int(row['batch_size'])} s={int(row['seq_len'])}"


def _noise(row) -> str:
    value = row.get("step_time_spread")
    return "" if value is None or pd.isna(value) else f" (its rounds ±{float(value):.0%})"


def unusable_rows(rows) -> list[str]:
    """'tiny b=4 s=256: invalid (min_iterations_not_met)' for each row a fit cannot use."""
    return [f"{_shape(r)}: {r['status']}" + (f" ({r['reason']})" if isinstance(r.get("reason"), str) else "")
            for _, r in rows.iterrows()]


def _int_range(series) -> list[int] | None:
    v = [int(x) for x in series if not pd.isna(x)]
    return [min(v), max(v)] if v else None


def fit_calibration(frame: pd.DataFrame, *, convention: str = CALIBRATION_CONVENTION,
                    max_heldout_error: float = DEFAULT_MAX_HELDOUT_ERROR, force: bool = False,
                    per_layer: bool = True, runs: Mapping[str, Run] | None = None, sources: Iterable[str] = (),
                    problems: Iterable[str] = ()) -> Calibration:
    """Fit every (hardware, dtype, phase) in the frame; UserError if nothing can be fitted. ``runs`` (run id ->
    run.json) gives the software versions of the provenance; ``per_layer=False`` fits one t0 whatever the
    depth (no τ)."""
    if convention not in CONVENTIONS:
        raise UserError(f"unknown FLOP convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    required = {"run_id", "hardware", "hardware_id", "device_name", "dtype", "phase", "valid", "step_time_s",
                f"flops_per_step_{convention}", *SHAPE_COLUMNS}
    missing = sorted(required - set(frame.columns))
    if missing:
        raise UserError(f"the results lack column(s) {', '.join(missing)}")
    frame = frame[frame["phase"].isin(PHASES)]  # bench-only phases (generate) are predicted from these, not fitted
    communication = []
    if "parallel" in frame.columns:   # multi-device runs: the step model is fitted on one device, the overlap on K
        communication = fit_overlap(frame)["fits"]
        world = frame["world_size"].fillna(1) if "world_size" in frame.columns else 1
        frame = frame[frame["parallel"].astype(object).fillna("none").eq("none") & (world == 1)]
    valid = frame[frame["valid"].fillna(False).astype(bool)]
    if valid.empty:
        raise UserError(f"no valid rows to calibrate from ({len(frame)} row(s) loaded, none valid)")

    fits, refused = [], []
    invalid = frame[~frame["valid"].fillna(False).astype(bool)]
    for (hw, dtype, phase), rows in sorted(valid.groupby(["hardware", "dtype", "phase"]), key=lambda kv: kv[0]):
        entry = {"hardware": hw, "hardware_id": _first_str(rows["hardware_id"]), "dtype": dtype, "phase": phase}
        result = fit_group(rows, convention=convention, max_heldout_error=max_heldout_error, force=force,
                           per_layer=per_layer)
        if "refused" in result:
            left_out = invalid[(invalid["hardware"] == hw) & (invalid["dtype"] == dtype) & (invalid["phase"] == phase)]
            refused.append(Refused(**entry, n_rows=result["n_rows"], n_shapes=result["n_shapes"],
                                   refused=result["refused"], rows=result.get("rows", []) + unusable_rows(left_out)))
        else:
            fits.append(Fit(**entry, **result, run_ids=sorted({str(r) for r in rows["run_id"]}),
                            device_names=sorted({str(d) for d in rows["device_name"] if isinstance(d, str)})))
    if not fits:
        raise UserError("cannot calibrate: " + "; ".join(r.describe() for r in refused))
    run_ids = sorted({str(r) for r in valid["run_id"]})
    runs = dict(runs or {})
    return Calibration(
        flop_convention=convention, max_heldout_error=max_heldout_error,
        provenance=Provenance(sources=[str(s) for s in sources], run_ids=run_ids,
                              device_names=sorted({str(d) for d in valid["device_name"] if isinstance(d, str)}),
                              environments={rid: _environment(runs.get(rid)) for rid in run_ids},
                              problems=list(problems)),
        fits=fits, refused=refused, communication=communication)


def predicted_points(frame: pd.DataFrame, calib: Calibration) -> tuple[pd.DataFrame, int]:
    """Every valid row beside what the calibration predicts for it (the "measured against predicted" figure):
    (points with phase, step_time_s, predicted_step_time_s, regime, held_out; rows it has no fit for).
    ``held_out`` marks rows from runs the calibration was not fitted on."""
    rows = frame[frame["valid"].fillna(False).astype(bool) & frame["status"].eq("ok")]
    fitted_runs = set(calib.provenance.run_ids)
    points, missing = [], 0
    for _, r in rows.iterrows():
        flops = r[f"flops_per_step_{calib.flop_convention}"]
        b = r["bytes_per_step"]
        layers = r.get("num_hidden_layers")
        try:
            t, regime = predict(calib, r["hardware"], r["dtype"], r["phase"], float(flops),
                                None if pd.isna(b) else float(b), layers=None if pd.isna(layers) else int(layers))
        except (UserError, TypeError, ValueError):
            missing += 1
            continue
        points.append({"phase": r["phase"], "step_time_s": r["step_time_s"], "predicted_step_time_s": t,
                       "regime": regime, "held_out": r["run_id"] not in fitted_runs})
    return pd.DataFrame(points, columns=["phase", "step_time_s", "predicted_step_time_s", "regime", "held_out"]), missing


def calibrate_results(results: Results, **options) -> Calibration:
    """Fit the runs loaded in ``results`` (see `fit_calibration` for the options)."""
    return fit_calibration(results.require_rows(), runs=results.runs, sources=[str(p) for p in results.paths],
                           problems=results.problems, **options)


def _first_str(series) -> str | None:
    return next((v for v in series if isinstance(v, str) and v), None)


def _environment(run: Run | None) -> dict:
    if run is None:
        return {}
    env = run.environment.model_dump()
    keep = ("python", "torch", "transformers", "cuda", "driver", "git_sha", "git_dirty", "platform")
    return {**{k: env.get(k) for k in keep}, "tool_version": run.tool_version, "created_utc": run.created_utc}
