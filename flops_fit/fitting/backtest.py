"""Rolling-origin backtest: every budget that can be predicted from the budgets below it, is.

Fold k fits Approach 2 on the interior budgets below budget k and predicts its N*, and fits
Approach 3 on the runs below it and predicts the loss at its observed optimum (N*, D* = C/(k N*)).
Runs of budget k and above (and ungrouped runs at or above its smallest C) never enter fold k's
fit, so nothing from that scale leaks in. Each fold's 95 % interval is made as a prediction at a
target budget is (:mod:`flops_fit.fitting.intervals`), with the law error learnt from the earlier
folds only (what the sweep knew at that point), plus the observed optimum's own noise; the fold says
whether the observation fell inside. All folds together measure the law error used for the targets.

``fit.json["backtest"]`` keeps its keys for the largest budget (``held_out_budget``, ``N_opt_ratio``,
…) and adds ``folds`` and the verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import parametric
from .approach2 import Profiles, Scatter, rolling_origins
from .bootstrap import resample_weights
from .intervals import LawError, combine, interval
from .table import MIN_POINTS

#: bootstrap resamples of each fold's Approach-3 refit (its share of the loss interval)
FOLD_RESAMPLES = 100
#: a loss fold needs this many budgets below: Approach 3 has 5 parameters, and from 2 budgets its
#: E and data term trade off freely (on Porian et al.'s sweeps such folds erred by 5-10 %, 5x the
#: error of folds fitted on 3 or more), which would say nothing about the full fit's error
LOSS_FOLD_MIN_BUDGETS = 3
APPROACH = {"N_opt": "isoFLOP power law (Approach 2) fitted on the budgets below",
            "loss": "parametric law (Approach 3) fitted on the runs below, at the held-out budget's observed N*"}


def _impossible(reason: str, held_out: float | None = None) -> dict:
    return {"held_out_budget": held_out, "approach": None, "reason": reason, "folds": [], "passed": None}


def _loss_fold(df: pd.DataFrame, prof: Profiles, k: int, huber_delta: float, loss_floor: float | None,
               rng: np.random.Generator, draws: int) -> tuple[float, np.ndarray] | None:
    """Approach 3 fitted on the runs below budget k: (ln predicted loss at its optimum, ln draws)."""
    C, group = df["C"].to_numpy(float), df["budget"].to_numpy(float)
    c_k = prof.C[k]
    below = np.where(np.isfinite(group), group < c_k, C < C[group == c_k].min())
    rest = df[below]
    if len(rest) < MIN_POINTS:
        return None
    data = parametric.Data.from_arrays(*(rest[c].to_numpy(float) for c in ("N", "D", "loss")), huber_delta, loss_floor)
    point = parametric.fit_parametric(data)
    n_opt = np.exp(prof.lnN[k])
    d_opt = c_k / (np.exp(prof.ln_k(prof.lnN)[k]) * n_opt)
    lnL = np.log(parametric.loss_at(point.theta, n_opt, d_opt))
    if not draws:
        return lnL, np.empty(0)
    strata = np.unique(np.nan_to_num(rest["budget"].to_numpy(float), nan=-1.0), return_inverse=True)[1]
    W = resample_weights(strata, FOLD_RESAMPLES, int(rng.integers(2 ** 31)))
    theta_b, _, _ = parametric.batched_lm(np.repeat(point.theta[None], FOLD_RESAMPLES, 0), data, W, rtol=1e-8)
    lnLb = np.log([parametric.loss_at(t, n_opt, d_opt) for t in theta_b])
    return lnL, lnLb


def run(df: pd.DataFrame, prof: Profiles | None, huber_delta: float, rng: np.random.Generator,
        draws: int, loss_floor: float | None = None) -> tuple[dict, LawError, LawError]:
    """(``fit.json["backtest"]``, the law error of ln N* and of ln loss measured by all folds).

    ``df`` is the prepared table (N, D, loss, C, budget), ``prof`` the full fit's profiles with their
    draws (``draws`` of them; 0: no intervals); ``loss_floor`` bounds Approach 3's E as in the full fit,
    so the backtest tests the law that is reported. Without 3 budgets there are no folds, and the law
    errors are their priors.
    """
    empty = (LawError.measure("lnN", [], [], []), LawError.measure("lnL", [], [], []))
    if prof is None or prof.C.size < 3:
        n = 0 if prof is None else prof.C.size
        return _impossible(f"{n} isoFLOP budget(s): a backtest needs 3 (2 to fit, 1 to predict)"), *empty
    folds: list[dict] = []
    obs_n: dict[str, list] = {"e": [], "v": [], "d": []}
    obs_l: dict[str, list] = {"e": [], "v": [], "d": []}
    for k, below in rolling_origins(prof.C, prof.ok):
        lnC_k = prof.lnC[k]
        distance = float(lnC_k - prof.lnC[below].max())
        a, lnk = prof.law(below)
        pred = lnk + a * lnC_k
        fold = {"C": float(prof.C[k]), "budgets_fitted": int(below.sum()), "distance_lnC": distance,
                "predicted_N_opt": float(np.exp(pred)), "observed_N_opt": float(np.exp(prof.lnN[k])),
                "N_ci": None, "N_inside": None, "predicted_loss": None, "observed_loss": float(prof.loss[k]),
                "loss_ci": None, "loss_inside": None}
        # the observed optimum's own noise and its scatter about the law (measured on the budgets below)
        obs_var = (float(np.var(prof.draws_lnN[:, k])) if draws else prof.sig[k] ** 2) \
            + Scatter.measure(prof, below).sd ** 2
        param = np.empty(0)
        if draws:
            ab, lnkb, _ = prof.law_draws(below)
            param = lnkb + ab * lnC_k
        law = LawError.measure("lnN", obs_n["e"], obs_n["v"], obs_n["d"])
        if param.size:
            fold["N_ci"] = interval(combine(param, rng, draws, law, distance, np.sqrt(obs_var)))
            fold["N_inside"] = bool(fold["N_ci"][0] <= fold["observed_N_opt"] <= fold["N_ci"][1])
        obs_n["e"].append(float(pred - prof.lnN[k]))
        obs_n["v"].append(float(np.var(param)) + obs_var if param.size else obs_var)
        obs_n["d"].append(distance)
        enough = (prof.C < prof.C[k]).sum() >= LOSS_FOLD_MIN_BUDGETS
        loss = _loss_fold(df, prof, k, huber_delta, loss_floor, rng, draws) if enough else None
        if loss is not None:
            lnL, lnLb = loss
            fold["predicted_loss"] = float(np.exp(lnL))
            obs_var_l = float(np.nanvar(np.log(prof.draws_loss[:, k]))) if draws else 0.0
            if lnLb.size:
                law_l = LawError.measure("lnL", obs_l["e"], obs_l["v"], obs_l["d"])
                fold["loss_ci"] = interval(combine(lnLb, rng, draws, law_l, distance, np.sqrt(obs_var_l)))
                fold["loss_inside"] = bool(fold["loss_ci"][0] <= fold["observed_loss"] <= fold["loss_ci"][1])
            obs_l["e"].append(float(lnL - np.log(prof.loss[k])))
            obs_l["v"].append(float(np.var(lnLb)) + obs_var_l if lnLb.size else obs_var_l)
            obs_l["d"].append(distance)
        folds.append(fold)
    laws = (LawError.measure("lnN", obs_n["e"], obs_n["v"], obs_n["d"]),
            LawError.measure("lnL", obs_l["e"], obs_l["v"], obs_l["d"]))
    held = int(np.argmax(prof.C))
    if not folds or folds[-1]["C"] != prof.C[held]:
        reason = (f"the held-out budget C={prof.C[held]:.3g} has no interior optimum "
                  f"({prof.reasons[held]})" if not prof.ok[held] else
                  f"fewer than 2 interior budgets below the largest, C={prof.C[held]:.3g}")
        out = _impossible(reason, float(prof.C[held]))
        out["folds"] = folds
        return out, *laws
    last = folds[-1]
    verdicts = [v for v in (last["N_inside"], last["loss_inside"]) if v is not None]
    out = {"held_out_budget": last["C"], "predicted_N_opt": last["predicted_N_opt"],
           "observed_N_opt": last["observed_N_opt"], "N_opt_ratio": last["predicted_N_opt"] / last["observed_N_opt"],
           "predicted_loss": last["predicted_loss"], "observed_loss": last["observed_loss"],
           "loss_error": None if last["predicted_loss"] is None else last["predicted_loss"] - last["observed_loss"],
           "N_ci": last["N_ci"], "loss_ci": last["loss_ci"],
           "approach": dict(APPROACH), "reason": None, "folds": folds,
           "passed": all(verdicts) if verdicts else None,
           "folds_inside": {q: [sum(bool(f[f"{q}_inside"]) for f in folds),
                                sum(f[f"{q}_inside"] is not None for f in folds)] for q in ("N", "loss")}}
    return out, *laws
