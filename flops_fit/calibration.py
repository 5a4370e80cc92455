"""Learning-rate calibration: measure lr*(N) on the user's own model and data before the sweep.

An lr rule borrowed from another architecture, dataset or batch size can be off by several times,
and Porian et al. (2024) show that untuned hyperparameters alone move the compute-optimal exponent
(0.497 tuned against up to 0.706). So, before the IsoFLOP sweep, the smallest budget's window is
sampled at three sizes (its smallest, middle and largest), each trained at the lr rule's value times
each of ``sweep.lr_calibration.factors``. Each size's best lr is the vertex of a parabola in ln lr
through its lowest loss and the two neighbours; ``ln lr* = ln c + x ln N`` is fitted through the
three, with x clipped to ``exponent_range``. Every sweep run then uses lr*(N).

The calibration runs are ordinary planned runs (resumable, never retrained), kept out of the fit.
A run that did not learn (:mod:`flops_fit.learning`: its loss stayed within 2 % of its initial loss)
counts as failed, like a diverged one: a size whose every lr is flat gets no best lr (flat losses would
hand out a minimum chosen by noise), and a calibration in which no run learned is an error saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from flops_fit.planning import SizeCatalog, as_size, as_table, plan_row, reference_params
from flops_fit.recipe import Recipe


def lr_rule(recipe: Recipe, catalog: SizeCatalog) -> Callable[[int], float]:
    """The configured lr rule lr · (N / N_ref)^exponent, as a function of N."""
    n_ref = reference_params(recipe, catalog)
    return lambda params: recipe.learning_rate(params, n_ref)


def calibration_sizes(window: list) -> list:
    """The smallest, middle and largest size of a window (ordered by N)."""
    if len(window) <= 3:
        return list(window)
    return [window[0], window[len(window) // 2], window[-1]]


def plan_calibration(
    recipe: Recipe, budget: float, catalog: SizeCatalog, window: list, fixed_batch: int | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The calibration runs at ``budget`` (the smallest): three sizes of its window × each lr factor."""
    rule = lr_rule(recipe, catalog)
    ordered = sorted((as_size(s) for s in window), key=lambda s: catalog.info(s).params)
    rows, notes = [], []
    for size in calibration_sizes(ordered):
        info = catalog.info(size)
        for factor in recipe.lr_calibration.factors:
            row, more = plan_row(
                recipe, catalog.size_param, budget, size, info, catalog.tokens_per_sample, rule(info.params) * factor,
                fixed_batch=fixed_batch, role="calibration", suffix=f"_lrx{factor:g}",
            )
            rows.append(row)
            notes += more
    return as_table(rows), notes


def best_lr(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, bool]:
    """(best lr, at the edge of the grid) from one size's losses: parabola vertex in ln lr around the minimum.

    Non-finite losses (diverged runs) count as worse than any finite one.
    """
    order = np.argsort(lrs)
    x, y = np.log(lrs[order]), np.where(np.isfinite(losses[order]), losses[order], np.inf)
    if not np.isfinite(y).any():
        raise ValueError("every calibration run of this size diverged or failed")
    i = int(np.argmin(y))
    if i in (0, len(x) - 1):
        return float(lrs[order][i]), True
    xs, ys = x[i - 1 : i + 2], y[i - 1 : i + 2]
    if not np.isfinite(ys).all():
        return float(lrs[order][i]), False
    a, b, _ = np.polyfit(xs, ys, 2)
    vertex = -b / (2 * a) if a > 0 else x[i]
    return float(math.exp(np.clip(vertex, xs[0], xs[-1]))), False


def _flat_cause(lrs: np.ndarray, flat: np.ndarray, learned: np.ndarray) -> str:
    """The likely cause of one size's flat runs, read from where they lie on its lr grid."""
    flat_lrs = ", ".join(f"{lr:.3g}" for lr in np.sort(lrs[flat]))
    if not learned.any():
        return (f"no lr of the grid ({flat_lrs}) learned: the model is likely too small for the task, or every "
                "lr tried is too high or too low; try a larger size, or shift sweep.lr / widen "
                "sweep.lr_calibration.factors")
    if lrs[flat].min() > lrs[learned].max():
        return f"lr {flat_lrs} too high (the smaller lrs learned)"
    if lrs[flat].max() < lrs[learned].min():
        return f"lr {flat_lrs} too low for its steps (the larger lrs learned)"
    return f"lr {flat_lrs} did not learn while others did"


def fit_lr_law(table: pd.DataFrame, losses: dict[str, float], exponent_range: tuple[float, float],
               flat: dict[str, str] | None = None) -> dict:
    """lr*(N) = coefficient · N^exponent from the calibration runs; JSON-ready, with warnings.

    ``flat``: run id → why it did not learn (:func:`flops_fit.learning.flat_runs`); those runs count as
    failed (their loss is not compared), and each size with any is named in a warning with the cause.
    """
    flat = flat or {}
    per_size, warnings = [], []
    for size, rows in table.groupby("size", sort=False):
        lrs = rows["lr"].to_numpy(float)
        values = np.array([losses.get(r, math.nan) for r in rows["run_id"]], float)
        params = int(rows["params"].iloc[0])
        is_flat = np.array([str(r) in flat for r in rows["run_id"]], bool)
        measured = values.copy()
        if is_flat.any():
            learned = ~is_flat & np.isfinite(values)
            names = ", ".join(str(r) for r in rows["run_id"][is_flat])
            left_out = "; size left out (no best lr)" if not learned.any() else "; left out of its best lr"
            warnings.append(
                f"lr calibration at {rows['size_param'].iloc[0]}={as_size(size)} (N={params:.3g}): {names} did not "
                f"learn ({flat[str(rows['run_id'][is_flat].iloc[0])]}): {_flat_cause(lrs, is_flat, learned)}{left_out}"
            )
            if not learned.any():
                continue
            values = np.where(is_flat, math.nan, values)
        try:
            lr, at_edge = best_lr(lrs, values)
        except ValueError as exc:
            warnings.append(f"lr calibration at {rows['size_param'].iloc[0]}={as_size(size)}: {exc}; size left out")
            continue
        if at_edge:
            side = "largest" if lr >= lrs.max() else "smallest"
            warnings.append(
                f"lr calibration at {rows['size_param'].iloc[0]}={as_size(size)} (N={params:.3g}): the best lr "
                f"{lr:.3g} is the {side} tried; the true optimum may lie beyond it. Shift sweep.lr (or widen "
                "sweep.lr_calibration.factors) and rerun"
            )
        per_size.append({
            "size": as_size(size), "params": params, "best_lr": lr, "at_edge": at_edge,
            "lrs": lrs.tolist(), "losses": [v if math.isfinite(v) else None for v in measured],
            "no_learning": [str(r) for r in rows["run_id"][is_flat]],
        })
    if not per_size:
        if flat and all(str(r) in flat or not math.isfinite(losses.get(r, math.nan)) for r in table["run_id"]):
            raise ValueError(
                "lr calibration: no calibration run learned (every loss stayed at its initial value or diverged): "
                + "; ".join(w for w in warnings if "did not learn" in w)
                + ". The models are likely too small for the task or every lr tried is off: try larger sizes, "
                "or shift sweep.lr and widen sweep.lr_calibration.factors"
            )
        raise ValueError("lr calibration: no size gave a finite loss at any lr; lower sweep.lr")
    lnN = np.log([p["params"] for p in per_size])
    lnlr = np.log([p["best_lr"] for p in per_size])
    lo, hi = sorted(exponent_range)
    if len(per_size) >= 2 and np.ptp(lnN) > 0:
        slope = float(np.polyfit(lnN, lnlr, 1)[0])
        exponent = float(np.clip(slope, lo, hi))
        if exponent != slope:
            warnings.append(f"lr calibration: fitted exponent {slope:.3f} clipped to {exponent:.3f} "
                            f"(sweep.lr_calibration.exponent_range)")
    else:
        slope = exponent = float(np.clip(-1 / 3, lo, hi))
    coefficient = float(math.exp(np.mean(lnlr - exponent * lnN)))
    return {"coefficient": coefficient, "exponent": exponent, "fitted_exponent": slope,
            "per_size": per_size, "warnings": warnings}


def law_lr(law: dict) -> Callable[[int], float]:
    """lr*(N) from a fitted law (the content of ``results/plan/lr_calibration.json``)."""
    return lambda params: law["coefficient"] * params ** law["exponent"]
