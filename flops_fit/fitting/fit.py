"""``fit_table``: Approach 2 + Approach 3 with bootstrap intervals and predictions at target budgets.

FLOP convention: C defaults to 6·N·D. When the table has C, the compute-optimal frontier of
Approach 3 uses C = k·N·D with k = median(C / (N·D)), so a workflow that counts attention FLOPs
(k > 6) gets N*, D* that spend its own notion of a budget; Approach 2 uses each group's budget and
D* = C / (k_g·N*) with k_g the group's median ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import advice, approach2, backtest, parametric
from .bootstrap import CI_LEVEL, ci_pair as _ci, resample_weights
from .records import ScalingFit, strict
from .table import drop_failed, group_runs, validate_table

#: quantile levels stored along the frontier (bands of the N*/D* plot and the D*/N* fan chart)
FAN_LEVELS = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)
FRONTIER_POINTS = 40
#: the bootstrap stops a resample when an accepted step improves the objective by less than this
#: (measured on the Epoch data: exponents within 2e-4 of a 1e-13 solve, 10x below Monte-Carlo error)
BOOT_RTOL = 1e-8
PARAMS = ("E", "A", "B", "alpha", "beta", "a", "b")


def _params_from_theta(theta: np.ndarray) -> dict[str, np.ndarray]:
    e, a, b, al, be = theta.T
    return {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": al, "beta": be,
            "a": be / (al + be), "b": al / (al + be)}


def _disjoint(x: list[float] | None, y: list[float] | None) -> bool:
    return x is not None and y is not None and (x[1] < y[0] or y[1] < x[0])


DEGREES = ("auto", 2, 3)
RECOMMEND_FROM = ("isoflop", "parametric")


def _check_options(degree: int | str, bootstrap: int, huber_delta: float, noise_sd: float | None,
                   recommend_from: str) -> None:
    """Reject unusable options up front with a message naming the option."""
    if degree not in DEGREES:
        raise ValueError(f"degree must be auto, 2 (parabola) or 3 (cubic), not {degree!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples, not {bootstrap}")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be positive, not {huber_delta}")
    if noise_sd is not None and not noise_sd >= 0:
        raise ValueError(f"noise_sd must be a loss standard deviation >= 0, not {noise_sd}")
    if recommend_from not in RECOMMEND_FROM:
        raise ValueError(f"recommend_from must be isoflop or parametric, not {recommend_from!r}")


def prepare_table(df: pd.DataFrame, budgets: Sequence[float] | None) -> tuple[pd.DataFrame, str | None, list[str]]:
    """The fit's input: failed runs dropped, values checked, C filled (6·N·D) and each run's isoFLOP
    group in ``budget`` (NaN: none); with where the groups came from and warnings. The CLI plots
    from this table, so the figures show the groups the fit used."""
    df, warnings = drop_failed(df)
    df = validate_table(df)
    if "C" not in df.columns:
        df["C"] = 6.0 * df["N"] * df["D"]
    group, source, more = group_runs(df, df["C"].to_numpy(float), budgets)
    df["budget"] = group
    return df, source, warnings + more


def fit_table(df: pd.DataFrame, *, budgets: Sequence[float] | None = None,
              target_budgets: Sequence[float] = (), bootstrap: int = 1000, seed: int = 0,
              degree: int | str = "auto", huber_delta: float = parametric.HUBER_DELTA,
              noise_sd: float | None = None, recommend_from: str = "isoflop",
              n_convention: str | None = None, loss_floor: float | None = None) -> ScalingFit:
    """Fit both approaches to a table of runs; return the fit (``fit.json`` is its ``to_dict()``).

    ``df`` has columns N, D, loss and optionally C, budget, run_id, status; several rows at the same
    (budget, N) are seed replicates and all are kept. ``budgets`` are the planned isoFLOP budgets
    when known; a ``budget`` column in the table wins over them. ``degree`` is the isoFLOP profile
    polynomial ("auto": per budget, :func:`isoflop.choose_degree`). ``noise_sd`` is the run-to-run
    loss noise (seed replicates), a floor on each profile's residual scale. ``recommend_from`` is
    the approach that recommends N* (the other is reported beside it). ``n_convention`` says what N
    counts (figure labels); None for a table whose convention is unknown. ``loss_floor`` is a known
    lower bound on the loss (a source's entropy rate): Approach 3's E, in the point fit, every
    bootstrap resample and the backtest, is searched at or above it, so no predicted loss is below it;
    it bounds the law, the observed losses are fitted as they are (a finite eval set can score a little
    under the floor), and runs clearly below it are warned about. Raises ValueError for an unusable
    table or arguments.
    """
    _check_options(degree, bootstrap, huber_delta, noise_sd, recommend_from)
    targets = np.asarray(list(target_budgets), float)
    if targets.size and (~np.isfinite(targets) | (targets <= 0)).any():
        raise ValueError(f"target budgets must be positive FLOP counts, got {list(target_budgets)}")
    df, source, warnings = prepare_table(df, budgets)
    N, D, L, C, group = (df[c].to_numpy(float) for c in ("N", "D", "loss", "C", "budget"))
    k = float(np.median(C / (N * D)))
    noise = noise_record(noise_sd)

    data = parametric.Data.from_arrays(N, D, L, huber_delta, loss_floor)
    point = parametric.fit_parametric(data)
    strata = np.unique(np.nan_to_num(group, nan=-1.0), return_inverse=True)[1]
    W = resample_weights(strata, bootstrap, seed)
    theta_b = np.empty((0, 5))
    conv_b = np.ones(0, bool)
    if bootstrap:
        theta_b, _, conv_b = parametric.batched_lm(np.repeat(point.theta[None], bootstrap, 0), data, W,
                                                   rtol=BOOT_RTOL)
    boot = _params_from_theta(theta_b)
    par = {**point.params, "ci": {name: _ci(boot[name]) for name in PARAMS},
           "objective": point.objective, "huber_delta": huber_delta,
           "converged": point.converged, "optimizer_message": point.message,
           "gradient_norm": point.grad_norm, "at_bounds": point.at_bounds,
           "bootstrap_converged_fraction": float(conv_b.mean()) if bootstrap else None,
           "flops_per_param_token": k, "loss_floor": loss_floor}
    warnings += parametric.floor_warnings(data, point.theta)
    if not point.converged:
        warnings.append(f"Approach 3: the optimiser did not report convergence ({point.message})")
    if point.at_bounds:
        warnings.append(f"Approach 3: parameter(s) {', '.join(point.at_bounds)} at a bound of the search box; "
                        "the fit is not an interior optimum and its exponents are unreliable")

    iso, iso_boot = approach2.fit_isoflop(N, D, L, C, group, W, degree, noise["sd"], warnings)
    iso["grouping"] = source

    lnC_hi = np.log(max(C.max(), targets.max() if targets.size else 0.0))
    c_grid = np.exp(np.linspace(np.log(C.min()), lnC_hi, FRONTIER_POINTS))
    predictions = _predictions(point.theta, theta_b, k, targets, iso, iso_boot, C.max(), warnings)
    choice = advice.choose_approach(iso, recommend_from)
    advice.annotate(predictions, choice)
    if _disjoint(par["ci"]["a"], iso["ci"].get("a")):
        warnings.append(f"Approach 2 and 3 disagree on a (N* ~ C^a): {iso['a']:.3f} {iso['ci']['a']} against "
                        f"{par['a']:.3f} {par['ci']['a']}; the isoFLOP profiles and the parametric law "
                        "do not describe the same optimum (check that the sweeps bracket the optimum and "
                        "that the law fits all runs: see the residual plot)")
    return ScalingFit.from_dict(strict({  # plain Python, non-finite -> None, as fit.json holds it
        "n_runs": int(len(df)),
        "N_convention": n_convention,
        "noise": noise,
        "parametric": par,
        "isoflop": iso,
        "predictions": predictions,
        "recommend": choice,
        "backtest": backtest.run(df, degree, noise["sd"], huber_delta, iso, loss_floor),
        "frontier": _frontier(point.theta, theta_b, k, c_grid),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "ci_level": CI_LEVEL,
                      "scheme": "runs resampled with replacement within their isoFLOP budget group"},
        "warnings": warnings,
    }))


def noise_record(noise_sd: float | None) -> dict:
    """``fit.json["noise"]``: the run-to-run loss noise the fit was given (seed replicates), or none.

    Runs at the same (budget, N) are kept as replicates either way; their spread is not turned into
    a noise estimate here, because a table's repeated (N, D) may differ in more than the seed (a
    learning-rate sweep, say), and that spread is not noise.
    """
    return {"sd": None if noise_sd is None else float(noise_sd), "source": None if noise_sd is None else "given"}


def _predictions(theta, theta_b, k, targets, iso, iso_boot, c_max, warnings) -> list[dict]:
    out = []
    if not targets.size:
        return out
    Np, Dp, Lp = parametric.frontier(theta, targets, k)
    Nb, Db, Lb = parametric.frontier(theta_b, targets, k) if theta_b.size else (None,) * 3
    for j, c in enumerate(targets):
        entry = {"C": float(c), "approach": "parametric (Approach 3)", "N": float(Np[j]), "D": float(Dp[j]),
                 "loss": float(Lp[j]), "tokens_per_param": float(Dp[j] / Np[j]),
                 "ci": {"N": _ci(None if Nb is None else Nb[:, j]), "D": _ci(None if Db is None else Db[:, j]),
                        "loss": _ci(None if Lb is None else Lb[:, j])},
                 "isoflop_N": None, "isoflop_D": None, "isoflop_ci": {"N": None, "D": None},
                 "extrapolation_factor": float(c / c_max)}
        if iso["a"] is not None:
            entry["isoflop_N"] = iso["N_coef"] * c ** iso["a"]
            entry["isoflop_D"] = iso["D_coef"] * c ** iso["b"]
            if iso_boot:
                entry["isoflop_ci"] = {"N": _ci(np.exp(iso_boot["lnkN"] + iso_boot["a"] * np.log(c))),
                                       "D": _ci(np.exp(iso_boot["lnkD"] + iso_boot["b"] * np.log(c)))}
            if _disjoint(entry["ci"]["N"], entry["isoflop_ci"]["N"]):
                warnings.append(f"Approach 2 and 3 disagree on N* at C={c:.3g}: {entry['isoflop_N']:.3g} "
                                f"{entry['isoflop_ci']['N']} against {entry['N']:.3g} {entry['ci']['N']}")
        if c / c_max > advice.EXTRAPOLATION_WARN:
            warnings.append(f"target budget C={c:.3g} is {c / c_max:.0f}x the largest fitted budget: a long "
                            "extrapolation; read its interval as a lower bound on the uncertainty")
        out.append(entry)
    return out


def _frontier(theta, theta_b, k, c_grid) -> dict:
    """N*, D*, L* along a grid of budgets, with bootstrap quantiles for bands and the fan chart."""
    Np, Dp, Lp = parametric.frontier(theta, c_grid, k)
    fr = {"C": c_grid.tolist(), "N": Np.tolist(), "D": Dp.tolist(), "loss": Lp.tolist(),
          "quantile_levels": list(FAN_LEVELS), "quantiles": None}
    if theta_b.size:
        Nb, Db, _ = parametric.frontier(theta_b, c_grid, k)
        q = np.asarray(FAN_LEVELS) * 100
        fr["quantiles"] = {name: np.nanpercentile(v, q, axis=0).tolist()
                           for name, v in (("N", Nb), ("D", Db), ("ratio", Db / Nb))}
    return fr
