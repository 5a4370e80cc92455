"""Prove the prediction: train the recommended size and its neighbours, compare their losses with the law's.

A target budget is an extrapolation. Before a lab spends it, a few runs a few times beyond the sweep,
trained with the sweep's own recipe (batch law at that C, the calibrated lr law or the lr rule, same
warmup, seed and schedule), show whether the fitted law predicts runs it never saw, and whether the
recommended size is the optimum at all: one run tests the loss law at one point, but only its
neighbours on the same budget can show that a smaller or larger model would have done better. So each
verify budget trains ``verify.sizes`` knob values (:func:`size_factors`: N*/2, N*, 2N* by default),
each the legal value closest to its N (:mod:`flops_fit.knob`, as the recommender resolves N*).
Every run is an ordinary planned run (role ``verify``) in its own table, so the workflow's train rule
trains it like any run (resumable, never retrained while its identity is unchanged, so growing
``verify.sizes`` only adds runs) and the fit, which reads only sweep rows of
``results/plan/runs.tsv``, never sees it.

The predicted loss is Approach 3's law L(N, D) = E + A/N^α + B/D^β at each run's actual N and
tokens (Approach 2 models N* and D*, not the loss). ``fit.json`` keeps the bootstrap interval of the
loss at each target budget's frontier point, not the resampled parameters, so there is no per-size
interval: the one at the frontier point is carried over to each run's L(N, D) (its offsets from the
frontier loss are added to the run's prediction). At the recommended size (same C, N within the
knob's rounding) the law's spread is the same to first order; a factor of 2 away it is an
approximation that understates the spread, which grows away from the data's centre. The interval is
the fit's uncertainty only: one run's seed noise (``ScalingFit.noise``) is not in it, but it is the
yardstick for whether a neighbour that beat the recommended size did so by more than chance.
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
from flops_fit.knob import Size, as_size, closest_size
from flops_fit.paths import run_file
from flops_fit.recipe import Recipe
from flops_fit.recommend import METHOD_TEXT, no_recommendation

COLUMNS = [
    "C", "run_id", "size_param", "size", "N", "D", "recommended", "method", "N_star", "N_star_isoflop",
    "N_star_parametric", "predicted_loss", "predicted_loss_lo", "predicted_loss_hi", "ci_level", "observed_loss",
    "status", "rel_error", "inside_interval", "observed_best", "noise_sd", "other_method", "other_N_star",
    "other_D_star", "other_predicted_loss",
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


def size_factors(count: int) -> list[float]:
    """The multiples of N* trained at a verify budget: ``count`` powers of 2 centred on 1 (3: 1/2, 1, 2).

    Powers of 2 space the sizes evenly in log N, the axis an IsoFLOP profile is a parabola in; an odd
    count keeps the recommended size in the middle, so a smaller and a larger model can each beat it.
    """
    if count < 1 or count % 2 == 0:
        raise ValueError(f"verify.sizes must be an odd count >= 1 (centred on N*), got {count}")
    half = count // 2
    return [2.0**k for k in range(-half, half + 1)]


def factor_text(factor: float) -> str:
    """1/4, 1/2, 1, 2, 4: how a factor of N* reads in a message."""
    return f"1/{1 / factor:.0f}" if factor < 1 else f"{factor:.0f}"


def sizes_at(catalog: planning.SizeCatalog, rec: dict, count: int) -> tuple[list[Size], list[str]]:
    """The distinct knob values trained at one verify budget, ascending, and a note for each value that
    several factors of N* share (a coarse knob or its edge: the value is trained once).

    Factor 1 is the recommended value itself; the others are resolved as the recommender resolves N*
    (:func:`flops_fit.knob.closest_size` over the legal values, seeded by the catalog's sizes).
    """
    chosen: dict[Size, list[float]] = {}
    for factor in size_factors(count):
        if factor == 1:
            size = as_size(rec["size"])
        else:
            size, _ = closest_size(catalog.model_cls, catalog.size_param, catalog.kwargs,
                                   factor * float(rec["N_star"]), catalog.seeds, catalog.counter)
            size = as_size(size)
        chosen.setdefault(size, []).append(factor)
    notes = [
        f"verify C = {float(rec['C']):.3g}: {' and '.join(factor_text(f) for f in factors)} × N* give the same "
        f"{catalog.size_param} = {size}; it is trained once ({len(chosen)} distinct sizes of the {count} asked for)"
        for size, factors in chosen.items() if len(factors) > 1
    ]
    return sorted(chosen), notes  # N grows with the knob (the model contract)


def verify_sizes(config: dict) -> int:
    """``verify.sizes`` of a prepared config (the schema fills its default)."""
    return int(config["verify"]["sizes"])


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
    lr_of: Callable[[int], float], recommendations: pd.DataFrame, budgets: list[float], count: int,
) -> tuple[pd.DataFrame, list[str]]:
    """One planned run per budget and size (:func:`sizes_at`, ``count`` = ``verify.sizes``), each spending
    the whole budget with the sweep's recipe (``lr_of``: the sweep's lr of a parameter count). The run
    id names the size, so the recommended run keeps the id it had with ``count`` = 1."""
    check_budgets(budgets, recommendations)
    rows, notes = [], []
    for budget in budgets:
        rec = recommendation_at(recommendations, budget)
        sizes, more = sizes_at(catalog, rec, count)
        notes += more
        for size in sizes:
            info = catalog.info(size)
            row, more = planning.plan_row(recipe, catalog.size_param, float(rec["C"]), size, info, tokens_per_sample,
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
    """One verification run: predicted against observed loss, whether it is the recommended size, and the
    other approach's N* and loss beside it (``observed_best`` is set per budget by :func:`verification_table`)."""
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
        "N": run["params"], "D": run["tokens"], "recommended": as_size(run["size"]) == as_size(rec["size"]),
        "method": method, "N_star": rec["N_star"],
        "N_star_isoflop": rec.get("N_star_isoflop"), "N_star_parametric": rec.get("N_star_parametric"),
        "predicted_loss": predicted, "predicted_loss_lo": lo, "predicted_loss_hi": hi,
        "ci_level": fit.ci_level, "observed_loss": loss, "status": status,
        "rel_error": loss / predicted - 1 if both else None,
        "inside_interval": lo <= loss <= hi if both and lo is not None else None,
        "observed_best": None, "noise_sd": fit.noise.sd,
        "other_method": other, "other_N_star": other_N, "other_D_star": other_D,
        "other_predicted_loss": law_loss(parametric, other_N, other_D) if other_N and other_D else None,
    }


def read_metrics(runs_dir: str | Path, run_id: str) -> dict | None:
    path = run_file(runs_dir, run_id)
    return json.loads(path.read_text()) if path.exists() else None


def mark_best(rows: list[dict]) -> None:
    """``observed_best``: at each budget, True for the lowest observed loss, False for the other runs with
    a loss; runs without one (diverged, missing) stay None, since they neither win nor lose."""
    for budget in {row["C"] for row in rows}:
        done = [row for row in rows if row["C"] == budget and row["observed_loss"] is not None]
        best = min(done, key=lambda row: row["observed_loss"], default=None)
        for row in done:
            row["observed_best"] = row is best


def verification_table(fit: ScalingFit, recommendations: pd.DataFrame, plan: pd.DataFrame, runs_dir: str | Path) -> pd.DataFrame:
    """One row per verification run of ``plan`` (columns :data:`COLUMNS`)."""
    rows = []
    for run_id in plan["run_id"]:
        run = planning.run_row(plan, run_id)
        rows.append(verification_row(fit, recommendation_at(recommendations, run["budget"]), run,
                                     read_metrics(runs_dir, run_id)))
    mark_best(rows)
    return pd.DataFrame(rows, columns=COLUMNS)


# ------------------------------------------------------------------------------------------- report
def verification_line(row: dict) -> str:
    """The sentence about one run: observed against predicted loss (and, for the recommended run, what
    the other approach would have chosen)."""
    mark = " (recommended)" if row["recommended"] else ""
    head = (f"verify C = {row['C']:.3g}: {row['size_param']} = {row['size']}{mark} "
            f"(N = {count(row['N'])}, D = {count(row['D'])})")
    if row["observed_loss"] is None:
        return f"{head}: no loss observed (run {row['status']}); the prediction is untested"
    if row["predicted_loss"] is None:
        return f"{head}: observed loss {row['observed_loss']:.4g}, but the fit has no parametric law to compare"
    interval = ("no interval (bootstrap off or failed)" if row["inside_interval"] is None else
                f"{float(row['ci_level'] or 0.95):.0%} CI {row['predicted_loss_lo']:.4g}–{row['predicted_loss_hi']:.4g}, "
                f"{'inside' if row['inside_interval'] else 'OUTSIDE'}")
    line = (f"{head}: observed loss {row['observed_loss']:.4g}, predicted {row['predicted_loss']:.4g} "
            f"(Approach 3 law at this N, D; {interval}), error {row['rel_error']:+.2%}")
    if not row["recommended"]:
        return line
    other = f"; no N* from the {METHOD_TEXT[row['other_method']]}"
    if row["other_predicted_loss"] is not None:
        other = (f"; the {METHOD_TEXT[row['other_method']]} would have chosen N* = {count(row['other_N_star'])}, "
                 f"predicted loss {row['other_predicted_loss']:.4g}")
    return f"{line} (N* from the {METHOD_TEXT[row['method']]}){other}"


def noise_text(gap: float, sd: float | None) -> str:
    """A loss gap between two runs against run noise. Seed noise alone makes two runs' losses differ with
    sd σ√2, so a gap within 2σ√2 (about a 95% band) cannot tell the two sizes apart."""
    if sd is None or not sd > 0:
        return " (run noise unknown: sweep.seed_replicates measures it)"
    ratio = gap / (sd * math.sqrt(2))
    verdict = "within run noise" if ratio <= 2 else "beyond run noise"
    return f", {ratio:.1f}× the seed-noise sd of a two-run difference (σ√2, σ = {sd:.3g}): {verdict}"


def optimum_line(group: list[dict]) -> str:
    """The sentence about one budget: whether the recommended size is the observed best of the sizes
    trained there (or which size beat it, by how much), and how many losses fell inside their interval."""
    first = group[0]
    head, knob = f"verify C = {first['C']:.3g}", first["size_param"]
    rec = next(row for row in group if row["recommended"])
    done = [row for row in group if row["observed_loss"] is not None]
    inside = [bool(row["inside_interval"]) for row in done if row["inside_interval"] is not None]
    tail = (f"; {sum(inside)} of {len(inside)} losses inside their prediction intervals" if inside
            else "; no prediction intervals to test")
    if len(group) == 1:
        return (f"{head}: only the recommended size trained (verify.sizes = 1): whether it is the optimum is "
                f"untested{tail}")
    if rec["observed_loss"] is None or len(done) < 2:
        return (f"{head}: {len(done)} of {len(group)} sizes have a loss, the recommended {knob} = {rec['size']} "
                f"{'among them' if rec['observed_loss'] is not None else 'not'}: whether it is the optimum is "
                f"untested{tail}")
    trained = ", ".join(str(row["size"]) for row in done)
    best = next(row for row in done if row["observed_best"])
    if best["recommended"]:
        runner = min((row for row in done if not row["recommended"]), key=lambda row: row["observed_loss"])
        gap = runner["observed_loss"] - rec["observed_loss"]
        return (f"{head}: the recommended {knob} = {rec['size']} is the observed optimum of the {len(done)} sizes "
                f"trained ({knob} = {trained}); the next best, {knob} = {runner['size']}, lost {gap:.4g} more"
                f"{noise_text(gap, rec['noise_sd'])}{tail}")
    gap = rec["observed_loss"] - best["observed_loss"]
    sizes = [row["size"] for row in done]
    edge = ("" if min(sizes) < best["size"] < max(sizes) else
            f"; it is the {'smallest' if best['size'] == min(sizes) else 'largest'} size trained, so the optimum "
            "may lie beyond it")
    return (f"{head}: the recommended {knob} = {rec['size']} is NOT the observed optimum of the {len(done)} sizes "
            f"trained ({knob} = {trained}): {knob} = {best['size']} (N = {count(best['N'])}) reached a loss "
            f"{gap:.4g} lower ({gap / rec['observed_loss']:.2%}){noise_text(gap, rec['noise_sd'])}{edge}{tail}")


def lines(table: pd.DataFrame) -> list[str]:
    """Per budget, one :func:`verification_line` per run, then its :func:`optimum_line` (NaN read back
    from TSV becomes None)."""
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    out = []
    for budget in dict.fromkeys(row["C"] for row in rows):
        group = [row for row in rows if row["C"] == budget]
        out += [verification_line(row) for row in group] + [optimum_line(group)]
    return out


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
