"""Approach 2 of a table: one profile per isoFLOP budget, the power laws N* ~ C^a and D* ~ C^b, and
their bootstrap intervals (the math of one profile is :mod:`flops_fit.fitting.isoflop`)."""

from __future__ import annotations

import numpy as np

from . import isoflop
from .bootstrap import ci_pair as _ci


def profile_rows(lnN, L, C, N, D, group, degree, noise_sd, warnings) -> list[tuple[np.ndarray, int, dict]]:
    """One (row indices, degree, per-budget entry) per isoFLOP group; every budget left out
    of the power law is named in ``warnings`` with its reason."""
    out = []
    for g in np.unique(group[np.isfinite(group)]):
        idx = np.flatnonzero(group == g)
        deg, why = isoflop.choose_degree(lnN[idx], L[idx], degree)
        pt = isoflop.fit_profile(lnN[idx], L[idx], np.ones((1, idx.size)), deg, with_sigma=True, noise_sd=noise_sd)
        kg = float(np.median(C[idx] / (N[idx] * D[idx])))
        n_opt = float(np.exp(pt.lnN[0])) if np.isfinite(pt.lnN[0]) else None
        out.append((idx, deg, {
            "C": float(g), "N_opt": n_opt, "D_opt": None if n_opt is None else float(g / (kg * n_opt)),
            "loss_opt": float(pt.loss[0]) if np.isfinite(pt.loss[0]) else None,
            "interior": bool(pt.interior[0]), "reason": pt.reason[0] or None,
            "degree": deg, "degree_reason": why,
            "sd_lnN_opt": float(pt.sigma[0]) if np.isfinite(pt.sigma[0]) else None,
            "n_runs": int(idx.size), "n_sizes": int(np.unique(N[idx]).size),
            "N_range": [float(N[idx].min()), float(N[idx].max())], "k": kg}))
        if not pt.interior[0]:
            warnings.append(f"Approach 2: budget C={g:.3g} left out ({idx.size} runs, {np.unique(N[idx]).size} "
                            f"sizes, degree {deg}): {pt.reason[0]}")
    return out


def fit_isoflop(N, D, L, C, group, W, degree, noise_sd, warnings) -> tuple[dict, dict]:
    """Per-budget profiles + weighted power laws; returns (``fit.json["isoflop"]``, bootstrap draws).

    ``group`` is each run's isoFLOP budget (NaN: none), ``W`` the (R, n) bootstrap counts (R may be
    0), ``degree`` "auto", 2 or 3; messages about refused budgets are appended to ``warnings``.
    """
    lnN = np.log(N)
    iso: dict = {"a": None, "b": None, "N_coef": None, "D_coef": None, "ci": {"a": None, "b": None}, "degree": degree,
                 "per_budget": [], "skipped": None}
    empty: dict = {}
    profiles = profile_rows(lnN, L, C, N, D, group, degree, noise_sd, warnings)
    rows = [entry for _, _, entry in profiles]
    iso["per_budget"] = rows
    ok = np.array([r["interior"] for r in rows], bool)
    if not rows:
        iso["skipped"] = "Approach 2 skipped: the runs form no isoFLOP groups. Approach 3 alone is reported."
        return iso, empty
    if ok.sum() < 2:
        iso["skipped"] = (f"Approach 2 skipped: {ok.sum()} budget(s) with an interior optimum among "
                          f"{len(rows)} isoFLOP group(s) (need 2 or more). Approach 3 alone is reported.")
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
    if not W.shape[0]:
        return iso, empty
    fits = [isoflop.fit_profile(lnN[idx], L[idx], W[:, idx], deg) for idx, deg, _ in profiles]
    bl = np.stack([f.lnN for f in fits], axis=1)  # (R, G)
    bm = np.stack([f.interior for f in fits], axis=1) & ok[None]  # a budget refused by the point fit stays out
    ab, lnkNb = isoflop.power_law(lnCg, bl, sig, bm)
    bb, lnkDb = isoflop.power_law(lnCg, lnCg[None] - lnk[None] - bl, sig, bm)
    failed = np.isnan(ab).mean()
    if failed > 0.05:
        warnings.append(f"Approach 2: {failed:.0%} of bootstrap resamples had fewer than 2 interior budgets; "
                        "its intervals rest on the rest")
    iso["ci"] = {"a": _ci(ab), "b": _ci(bb)}
    return iso, {"a": ab, "lnkN": lnkNb, "b": bb, "lnkD": lnkDb}
