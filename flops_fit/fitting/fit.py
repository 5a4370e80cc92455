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

from . import isoflop, parametric
from .bootstrap import CI_LEVEL, percentile_ci, resample_weights
from .report import strict
from .table import assign_budgets, drop_failed, validate_table

#: quantile levels stored along the frontier (bands of the N*/D* plot and the D*/N* fan chart)
FAN_LEVELS = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)
FRONTIER_POINTS = 40
#: the bootstrap stops a resample when an accepted step improves the objective by less than this
#: (measured on the Epoch data: exponents within 2e-4 of a 1e-13 solve, 10x below Monte-Carlo error)
BOOT_RTOL = 1e-8
#: a target budget beyond this multiple of the largest fitted C is flagged as a long extrapolation
EXTRAPOLATION_WARN = 100.0
PARAMS = ("E", "A", "B", "alpha", "beta", "a", "b")


def _params_from_theta(theta: np.ndarray) -> dict[str, np.ndarray]:
    e, a, b, al, be = theta.T
    return {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": al, "beta": be,
            "a": be / (al + be), "b": al / (al + be)}


def _ci(samples: np.ndarray | None) -> list[float] | None:
    if samples is None:
        return None
    ci = percentile_ci(samples)
    return None if ci is None else [float(ci[0]), float(ci[1])]


def _disjoint(x: list[float] | None, y: list[float] | None) -> bool:
    return x is not None and y is not None and (x[1] < y[0] or y[1] < x[0])


def fit_table(df: pd.DataFrame, *, budgets: Sequence[float] | None = None,
              target_budgets: Sequence[float] = (), bootstrap: int = 1000, seed: int = 0,
              degree: int = 2) -> dict:
    """Fit both approaches to a table of runs; return the content of ``fit.json``.

    ``df`` has columns N, D, loss and optionally C, budget, run_id, status. ``budgets`` are the
    planned isoFLOP budgets when known; a ``budget`` column in the table wins over them. Raises
    ValueError for an unusable table or arguments.
    """
    if degree not in (2, 3):
        raise ValueError(f"degree must be 2 (parabola) or 3 (cubic), not {degree}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples, not {bootstrap}")
    targets = np.asarray(list(target_budgets), float)
    if targets.size and (~np.isfinite(targets) | (targets <= 0)).any():
        raise ValueError(f"target budgets must be positive FLOP counts, got {list(target_budgets)}")
    df, warnings = drop_failed(df)
    df = validate_table(df)
    N, D, L = (df[c].to_numpy(float) for c in ("N", "D", "loss"))
    C = df["C"].to_numpy(float) if "C" in df.columns else 6.0 * N * D
    k = float(np.median(C / (N * D)))
    if "budget" in df.columns:
        group = df["budget"].to_numpy(float)
    else:
        group, more = assign_budgets(C, budgets)
        warnings += more

    data = parametric.Data.from_arrays(N, D, L)
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
           "objective": point.objective, "huber_delta": parametric.HUBER_DELTA,
           "converged": point.converged, "optimizer_message": point.message,
           "gradient_norm": point.grad_norm, "at_bounds": point.at_bounds,
           "bootstrap_converged_fraction": float(conv_b.mean()) if bootstrap else None,
           "flops_per_param_token": k}
    if not point.converged:
        warnings.append(f"Approach 3: the optimiser did not report convergence ({point.message})")
    if point.at_bounds:
        warnings.append(f"Approach 3: parameter(s) {', '.join(point.at_bounds)} at a bound of the search box; "
                        "the fit is not an interior optimum and its exponents are unreliable")

    iso, iso_boot = _approach2(np.log(N), L, C, N, D, group, W, degree, warnings)

    lnC_hi = np.log(max(C.max(), targets.max() if targets.size else 0.0))
    c_grid = np.exp(np.linspace(np.log(C.min()), lnC_hi, FRONTIER_POINTS))
    predictions = _predictions(point.theta, theta_b, k, targets, iso, iso_boot, C.max(), warnings)
    if _disjoint(par["ci"]["a"], iso["ci"].get("a")):
        warnings.append(f"Approach 2 and 3 disagree on a (N* ~ C^a): {iso['a']:.3f} {iso['ci']['a']} against "
                        f"{par['a']:.3f} {par['ci']['a']}; the isoFLOP profiles and the parametric law "
                        "do not describe the same optimum (check that the sweeps bracket the optimum and "
                        "that the law fits all runs: see the residual plot)")
    return strict({  # plain Python, non-finite -> None: the dict is exactly what fit.json holds
        "n_runs": int(len(df)),
        "parametric": par,
        "isoflop": iso,
        "predictions": predictions,
        "frontier": _frontier(point.theta, theta_b, k, c_grid),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "ci_level": CI_LEVEL,
                      "scheme": "runs resampled with replacement within their isoFLOP budget group"},
        "warnings": warnings,
    })


def _approach2(lnN, L, C, N, D, group, W, degree, warnings) -> tuple[dict, dict]:
    """Per-budget profiles + weighted power laws; returns (isoflop dict, bootstrap draws)."""
    iso: dict = {"a": None, "b": None, "N_coef": None, "D_coef": None, "ci": {"a": None, "b": None}, "degree": degree,
                 "per_budget": [], "skipped": None}
    empty: dict = {}
    labels = np.unique(group[np.isfinite(group)])
    groups = [np.flatnonzero(group == g) for g in labels]
    usable = [(g, idx) for g, idx in zip(labels, groups) if np.unique(N[idx]).size >= degree + 2]
    if len(usable) < 2:
        iso["skipped"] = (f"Approach 2 skipped: {len(usable)} isoFLOP group(s) with at least {degree + 2} distinct "
                          "model sizes (need 2 or more); runs are at assorted budgets or the groups are too small. "
                          "Approach 3 alone is reported.")
        warnings.append(iso["skipped"])
        return iso, empty
    R = W.shape[0]
    rows, b_lnN, b_int = [], [], []
    for g, idx in usable:
        pt = isoflop.fit_profile(lnN[idx], L[idx], np.ones((1, idx.size)), degree, with_sigma=True)
        kg = float(np.median(C[idx] / (N[idx] * D[idx])))
        n_opt = float(np.exp(pt.lnN[0])) if np.isfinite(pt.lnN[0]) else None
        rows.append({"C": float(g), "N_opt": n_opt, "D_opt": None if n_opt is None else float(g / (kg * n_opt)),
                     "loss_opt": float(pt.loss[0]) if np.isfinite(pt.loss[0]) else None,
                     "interior": bool(pt.interior[0]), "reason": pt.reason[0] or None,
                     "sd_lnN_opt": float(pt.sigma[0]) if np.isfinite(pt.sigma[0]) else None,
                     "n_runs": int(idx.size), "N_range": [float(N[idx].min()), float(N[idx].max())],
                     "k": kg})
        if not pt.interior[0]:
            warnings.append(f"Approach 2: budget C={g:.3g} refused: {pt.reason[0]}")
        if R:
            bt = isoflop.fit_profile(lnN[idx], L[idx], W[:, idx], degree)
            b_lnN.append(bt.lnN)
            b_int.append(bt.interior)
    iso["per_budget"] = rows
    ok = np.array([r["interior"] for r in rows])
    if ok.sum() < 2:
        iso["skipped"] = (f"Approach 2 skipped: only {ok.sum()} budget(s) with an interior optimum (need 2 or more)")
        warnings.append(iso["skipped"])
        return iso, empty
    lnCg = np.log([r["C"] for r in rows])
    lnk = np.log([r["k"] for r in rows])
    lnNs = np.log([r["N_opt"] or np.nan for r in rows])
    sig = np.array([r["sd_lnN_opt"] or isoflop.SIGMA_FLOOR for r in rows])
    a, lnkN = isoflop.power_law(lnCg, lnNs[None], sig, ok[None])
    b, lnkD = isoflop.power_law(lnCg, (lnCg - lnk - lnNs)[None], sig, ok[None])
    iso.update(a=float(a[0]), b=float(b[0]), N_coef=float(np.exp(lnkN[0])), D_coef=float(np.exp(lnkD[0])),
               n_budgets_used=int(ok.sum()))
    if not R:
        return iso, empty
    bl = np.stack(b_lnN, axis=1)  # (R, G)
    bm = np.stack(b_int, axis=1) & ok[None]  # a budget refused by the point fit stays out
    ab, lnkNb = isoflop.power_law(lnCg, bl, sig, bm)
    bb, lnkDb = isoflop.power_law(lnCg, lnCg[None] - lnk[None] - bl, sig, bm)
    failed = np.isnan(ab).mean()
    if failed > 0.05:
        warnings.append(f"Approach 2: {failed:.0%} of bootstrap resamples had fewer than 2 interior budgets; "
                        "its intervals rest on the rest")
    iso["ci"] = {"a": _ci(ab), "b": _ci(bb)}
    return iso, {"a": ab, "lnkN": lnkNb, "b": bb, "lnkD": lnkDb}


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
        if c / c_max > EXTRAPOLATION_WARN:
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
