"""Backtest: refit without the largest budget and predict it, the test a user's extrapolation faces.

The largest isoFLOP budget is held out; Approach 2 fitted on the other budgets predicts its N*, and
Approach 3 fitted on the other runs predicts the loss at its observed optimum (N*, D* = C / (k N*)).
Both are compared with what the held-out profile shows. Runs at C at or above the held-out budget
(outside any group) are left out of the refit too, so nothing from that scale leaks in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import approach2, parametric
from .table import MIN_POINTS

FIELDS = ("held_out_budget", "predicted_N_opt", "observed_N_opt", "N_opt_ratio", "predicted_loss",
          "observed_loss", "loss_error")
APPROACH = {"N_opt": "isoFLOP power law (Approach 2) fitted on the other budgets",
            "loss": "parametric law (Approach 3) fitted on the other runs, at the held-out budget's observed N*"}


def _impossible(reason: str, held_out: float | None = None) -> dict:
    return {**dict.fromkeys(FIELDS), "held_out_budget": held_out, "approach": None, "reason": reason}


def run(df: pd.DataFrame, degree: int | str, noise_sd: float | None, huber_delta: float, iso: dict,
        loss_floor: float | None = None) -> dict:
    """``fit.json["backtest"]``: predicted and observed N* and loss at the held-out largest budget.

    ``df`` is the prepared table (N, D, loss, C, budget), ``iso`` the full fit's Approach 2 (its
    per-budget optimum of the held-out budget is the observation); ``loss_floor`` bounds Approach 3's E
    as in the full fit, so the backtest tests the law that is reported. Values are None, with a
    reason, when the backtest is impossible.
    """
    budgets = iso["per_budget"]
    if len(budgets) < 3:
        return _impossible(f"{len(budgets)} isoFLOP budget(s): a backtest needs 3 (2 to fit, 1 to predict)")
    held = max(budgets, key=lambda e: e["C"])
    if not held["interior"]:
        return _impossible(f"the held-out budget C={held['C']:.3g} has no interior optimum ({held['reason']})",
                           held["C"])
    C, group = df["C"].to_numpy(float), df["budget"].to_numpy(float)
    rest = df[(group != held["C"]) & (C < C[group == held["C"]].min())]
    N, D, L = (rest[c].to_numpy(float) for c in ("N", "D", "loss"))
    iso_rest, _ = approach2.fit_isoflop(N, D, L, rest["C"].to_numpy(float), rest["budget"].to_numpy(float),
                                        np.zeros((0, len(rest))), degree, noise_sd, [])
    if iso_rest["a"] is None:
        return _impossible(f"without C={held['C']:.3g}, {iso_rest['skipped']}", held["C"])
    predicted_n = iso_rest["N_coef"] * held["C"] ** iso_rest["a"]
    out = {"held_out_budget": held["C"], "predicted_N_opt": predicted_n, "observed_N_opt": held["N_opt"],
           "N_opt_ratio": predicted_n / held["N_opt"], "predicted_loss": None, "observed_loss": held["loss_opt"],
           "loss_error": None, "approach": dict(APPROACH), "reason": None}
    if len(rest) >= MIN_POINTS:
        point = parametric.fit_parametric(parametric.Data.from_arrays(N, D, L, huber_delta, loss_floor))
        n_opt = held["N_opt"]
        out["predicted_loss"] = parametric.loss_at(point.theta, n_opt, held["C"] / (held["k"] * n_opt))
        out["loss_error"] = out["predicted_loss"] - held["loss_opt"]
    return out
