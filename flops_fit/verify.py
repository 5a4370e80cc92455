"""Prove the prediction: train the recommended run once and compare its loss with what the law predicted.

A target budget is an extrapolation. Before a lab spends it, one run a few times beyond the sweep,
the recommended size-knob value on the recommended tokens, trained with the sweep's own recipe
(batch law at that C, the calibrated lr law or the lr rule, same warmup, seed and schedule), shows
whether the fitted law predicts a run it never saw. Its row is an ordinary planned run (role
``verify``) in its own table, so the workflow's train rule trains it like any run (resumable, never
retrained while its identity is unchanged) and the fit, which reads only sweep rows of
``results/plan/runs.tsv``, never sees it.

The predicted loss is Approach 3's law L(N, D) = E + A/N^α + B/D^β at the run's actual N and
tokens (Approach 2 models N* and D*, not the loss). ``fit.json`` keeps the bootstrap interval of the
loss at each target budget's frontier point, not the resampled parameters, so the interval here is
that one carried over to L(N, D): its offsets from the frontier loss are added to the run's
prediction. The run sits beside the frontier point (same C, N within the knob's rounding), where
the law's spread is the same to first order. The interval is the fit's uncertainty only: one
run's seed noise (``ScalingFit.noise``) is not in it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from flops_fit import planning
from flops_fit.errors import ConfigError
from flops_fit.fitting.records import ParametricFit, Prediction, ScalingFit
from flops_fit.fitting.summary import count
from flops_fit.io import write_text, write_tsv
from flops_fit.paths import run_file
from flops_fit.recipe import Recipe
from flops_fit.recommend import METHOD_TEXT, no_recommendation

COLUMNS = [
    "C", "run_id", "size_param", "size", "N", "D", "method", "N_star", "N_star_isoflop", "N_star_parametric",
    "predicted_loss", "predicted_loss_lo", "predicted_loss_hi", "ci_level", "observed_loss", "status",
    "rel_error", "inside_interval", "other_method", "other_N_star", "other_D_star", "other_predicted_loss",
]
#: the run-id suffix of a verification run: never the id of a sweep run at the same (budget, size)
SUFFIX = "_verify"
#: relative tolerance when matching a verify budget to a target budget (both pass through YAML/TSV)
BUDGET_RTOL = 1e-6


# ------------------------------------------------------------------------------------------- plan
def verify_budgets(config: dict) -> list[float]:
    """``verify.budgets``, or the smallest target budget: the cheapest run that tests an extrapolation."""
    given = (config.get("verify") or {}).get("budgets")
    if given is not None:
        return [float(c) for c in given]
    return [min(float(c) for c in config["target_budgets"])] if config["target_budgets"] else []


def recommendation_at(recommendations: pd.DataFrame, budget: float) -> dict | None:
    """The recommendation row at ``budget`` (a plain dict), or None when there is none."""
    rows = recommendations[[math.isclose(c, budget, rel_tol=BUDGET_RTOL) for c in recommendations["C"]]]
    return rows.astype(object).where(rows.notna(), None).to_dict("records")[0] if len(rows) else None


def nothing_to_verify(fit: ScalingFit, budgets: list[float]) -> list[str]:
    """Why no run is trained (empty: there is something to verify): no budget, or no recommendation."""
    if not budgets:
        return ["no target_budgets and no verify.budgets: nothing to verify"]
    return [f"nothing to verify: {line}" for line in no_recommendation(fit)]


def check_budgets(budgets: list[float], recommendations: pd.DataFrame) -> None:
    """A verify budget must be a target budget: only there does the fit recommend a run and predict its loss."""
    missing = [c for c in budgets if recommendation_at(recommendations, c) is None]
    if missing:
        targets = ", ".join(f"{c:.3g}" for c in recommendations["C"])
        raise ConfigError(f"verify.budgets {', '.join(f'{c:.3g}' for c in missing)} not among target_budgets "
                          f"({targets}); add them to target_budgets (the fit predicts only there)")


def plan_verification(
    recipe: Recipe, catalog: planning.SizeCatalog, tokens_per_sample: int, fixed_batch: int | None,
    lr_of: Callable[[int], float], recommendations: pd.DataFrame, budgets: list[float],
) -> tuple[pd.DataFrame, list[str]]:
    """One planned run per budget: the recommended size on the recommended tokens, with the sweep's recipe
    (``lr_of``: the sweep's lr of a parameter count)."""
    check_budgets(budgets, recommendations)
    rows, notes = [], []
    for budget in budgets:
        rec = recommendation_at(recommendations, budget)
        info = catalog.info(rec["size"])
        row, more = planning.plan_row(recipe, catalog.size_param, float(rec["C"]), rec["size"], info, tokens_per_sample,
                                      lr_of(info.params), fixed_batch=fixed_batch, role="verify", suffix=SUFFIX)
        rows.append(row)
        notes += more
    return planning.as_table(rows), notes


# ------------------------------------------------------------------------------------------ compare
def law_loss(parametric: ParametricFit, N: float, D: float) -> float | None:
    """Approach 3's L(N, D) = E + A/N^α + B/D^β (None when the fit has no law)."""
    if any(getattr(parametric, k) is None for k in ("E", "A", "B", "alpha", "beta")):
        return None
    return float(parametric.loss(N, D))


def prediction_at(fit: ScalingFit, budget: float) -> Prediction:
    """The fit's prediction at a target budget."""
    prediction = fit.prediction_at(budget, rel_tol=BUDGET_RTOL)
    if prediction is None:
        raise KeyError(f"fit.json has no prediction at C={budget:.3g}")
    return prediction


def carried_interval(prediction: Prediction, loss: float | None) -> tuple[float | None, float | None]:
    """The prediction's loss interval moved to ``loss`` (offsets from the frontier loss kept; module doc)."""
    ci = prediction.ci.get("loss")
    if loss is None or not ci or prediction.loss is None:
        return None, None
    return loss + ci[0] - prediction.loss, loss + ci[1] - prediction.loss


def observed(metrics: dict | None) -> tuple[float | None, str]:
    """(held-out loss, status) of a finished run; no loss for a diverged or missing one."""
    if metrics is None:
        return None, "missing"
    loss = metrics.get("eval_loss")
    ok = metrics.get("status") == "ok" and loss is not None and math.isfinite(loss)
    return (float(loss) if ok else None), metrics.get("status") or "missing"


def other_approach(prediction: Prediction, method: str) -> tuple[str, float | None, float | None]:
    """(name, N*, D*) of the approach that did not give the recommendation."""
    if method == "isoflop":
        return "parametric", prediction.N, prediction.D
    return "isoflop", prediction.isoflop_N, prediction.isoflop_D


def verification_row(fit: ScalingFit, rec: dict, run: dict, metrics: dict | None) -> dict:
    """One verification: predicted against observed loss, and the other approach's N* and loss beside it."""
    prediction = prediction_at(fit, float(rec["C"]))
    parametric = fit.parametric
    predicted = law_loss(parametric, run["params"], run["tokens"])
    lo, hi = carried_interval(prediction, predicted)
    loss, status = observed(metrics)
    method = rec.get("method") or "parametric"
    other, other_N, other_D = other_approach(prediction, method)
    both = predicted is not None and loss is not None
    return {
        "C": rec["C"], "run_id": run["run_id"], "size_param": run["size_param"], "size": run["size"],
        "N": run["params"], "D": run["tokens"], "method": method, "N_star": rec["N_star"],
        "N_star_isoflop": rec.get("N_star_isoflop"), "N_star_parametric": rec.get("N_star_parametric"),
        "predicted_loss": predicted, "predicted_loss_lo": lo, "predicted_loss_hi": hi,
        "ci_level": fit.ci_level, "observed_loss": loss, "status": status,
        "rel_error": loss / predicted - 1 if both else None,
        "inside_interval": lo <= loss <= hi if both and lo is not None else None,
        "other_method": other, "other_N_star": other_N, "other_D_star": other_D,
        "other_predicted_loss": law_loss(parametric, other_N, other_D) if other_N and other_D else None,
    }


def read_metrics(runs_dir: str | Path, run_id: str) -> dict | None:
    path = run_file(runs_dir, run_id)
    return json.loads(path.read_text()) if path.exists() else None


def verification_table(fit: ScalingFit, recommendations: pd.DataFrame, plan: pd.DataFrame, runs_dir: str | Path) -> pd.DataFrame:
    """One row per verification run of ``plan`` (columns :data:`COLUMNS`)."""
    rows = []
    for run_id in plan["run_id"]:
        run = planning.run_row(plan, run_id)
        rows.append(verification_row(fit, recommendation_at(recommendations, run["budget"]), run,
                                     read_metrics(runs_dir, run_id)))
    return pd.DataFrame(rows, columns=COLUMNS)


# ------------------------------------------------------------------------------------------- report
def verification_line(row: dict) -> str:
    """The sentence a user reads before spending the budget: observed against predicted loss."""
    head = f"verify C = {row['C']:.3g}: {row['size_param']} = {row['size']} (N = {count(row['N'])}, D = {count(row['D'])})"
    if row["observed_loss"] is None:
        return f"{head}: no loss observed (run {row['status']}); the prediction is untested"
    if row["predicted_loss"] is None:
        return f"{head}: observed loss {row['observed_loss']:.4g}, but the fit has no parametric law to compare"
    interval = ("no interval (bootstrap off or failed)" if row["inside_interval"] is None else
                f"{float(row['ci_level'] or 0.95):.0%} CI {row['predicted_loss_lo']:.4g}–{row['predicted_loss_hi']:.4g}, "
                f"{'inside' if row['inside_interval'] else 'OUTSIDE'}")
    other = f"; no N* from the {METHOD_TEXT[row['other_method']]}"
    if row["other_predicted_loss"] is not None:
        other = (f"; the {METHOD_TEXT[row['other_method']]} would have chosen N* = {count(row['other_N_star'])}, "
                 f"predicted loss {row['other_predicted_loss']:.4g}")
    return (f"{head}: observed loss {row['observed_loss']:.4g}, predicted {row['predicted_loss']:.4g} "
            f"(Approach 3 law at this N, D; {interval}), error {row['rel_error']:+.2%} "
            f"(N* from the {METHOD_TEXT[row['method']]}){other}")


def lines(table: pd.DataFrame) -> list[str]:
    """One :func:`verification_line` per row (NaN read back from TSV becomes None)."""
    return [verification_line(r) for r in table.astype(object).where(table.notna(), None).to_dict("records")]


def write_verification(
    fit: ScalingFit, recommendations: pd.DataFrame, plan: pd.DataFrame, runs_dir: str | Path, budgets: list[float],
    table_path: str | Path, page_path: str | Path,
) -> tuple[pd.DataFrame, list[str]]:
    """``verify.tsv`` and ``verify.html``; returns the table and its lines (or why nothing ran)."""
    from flops_fit.report_page import verification_page

    table = verification_table(fit, recommendations, plan, runs_dir)
    out = lines(table) or nothing_to_verify(fit, budgets)
    write_tsv(table, table_path)
    write_text(verification_page(table, out), page_path)
    return table, out


def print_verification(path: str | Path, fit_json: str | Path) -> None:
    """Print the verification lines to stderr at the end of a workflow run (onsuccess), unless the table
    is older than the fit: a refitted sweep has not been verified yet."""
    path, fit_json = Path(path), Path(fit_json)
    if not path.exists() or (fit_json.exists() and path.stat().st_mtime < fit_json.stat().st_mtime):
        return
    for line in lines(pd.read_csv(path, sep="\t", dtype={"size_param": str, "run_id": str})):
        print(f"flops-fit: {line}", file=sys.stderr)
