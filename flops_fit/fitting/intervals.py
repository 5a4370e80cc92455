"""Prediction intervals: parameter uncertainty, run-to-run noise and the law's own error, combined.

A 95 % interval of N*, D* or the loss at a budget beyond the sweep must hold the truth 95 % of the
time. Parameter uncertainty alone (what a bootstrap of the fit gives) does not: on public sweeps such
intervals held the next budget's loss in 0 of 7 cases, because the fitted form is not the truth and
its error grows with the distance extrapolated. Each interval here is a Monte-Carlo sum of

(a) **parameter** draws of the fit (the parametric bootstrap of the profiles; Approach 3's
    bootstrap of runs within their budgets);
(b) **run-to-run noise**, for a loss a user will observe from one run: the seed replicates' sd
    (else the profiles' pooled residual sd);
(c) the **law error**: a normal error of sd ``tau · d`` where d is the distance extrapolated in
    ln C beyond the largest fitted budget and ``tau`` (per e-fold of C) is measured inside the sweep
    by the rolling-origin backtest: each budget predicted from the budgets below it, its squared
    error beyond what (a) and the observation's own noise explain, pooled over budgets
    (Tashman 2000, rolling-origin evaluation; the split-conformal idea of Vovk et al. 2005:
    intervals from held-out errors). A sweep has few such folds, so ``tau^2`` is drawn from its
    scaled-inverse-chi-square posterior with a weak prior (``PRIOR``): with 2 folds the law term
    has t-like tails, with many it tightens to what the folds show.

The parts of every interval are recorded in ``fit.json`` (``uncertainty``), so a reader sees what it
is made of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bootstrap import ci_pair

#: prior law error per e-fold of C extrapolated, and its weight in pseudo-folds. ln N*: a slope
#: error of 0.02 in a (published exponents of one setup refitted differ by a few hundredths);
#: ln loss: 0.5 % per e-fold (public sweeps' next-budget loss errors are 0.3–2 %).
PRIOR = {"lnN": (0.015, 2.0), "lnL": (0.002, 2.0)}


@dataclass(frozen=True)
class LawError:
    """The law's error per e-fold of C extrapolated, as measured by the rolling backtest."""

    #: "lnN" (error of ln N*) or "lnL" (error of ln loss)
    quantity: str
    #: posterior scale of tau (per e-fold of C) and its degrees of freedom (folds + prior weight)
    tau: float
    dof: float
    folds: int
    #: the folds' own estimate (None without folds): excess squared error over squared distance
    tau_folds: float | None

    @classmethod
    def measure(cls, quantity: str, errors: list[float], expected_var: list[float], distances: list[float]) -> LawError:
        """Pool the folds' excess squared errors (beyond parameter and observation noise) per d^2."""
        tau0, nu0 = PRIOR[quantity]
        m = len(errors)
        tau_folds = None
        if m:
            e2 = np.square(errors) - np.asarray(expected_var)
            tau_folds = float(np.sqrt(max(e2.sum(), 0.0) / max(np.sum(np.square(distances)), 1e-12)))
        scale2 = ((m * tau_folds ** 2 if m else 0.0) + nu0 * tau0 ** 2) / (m + nu0)
        return cls(quantity, float(np.sqrt(scale2)), float(m + nu0), m, tau_folds)

    def draws(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n draws of tau from its scaled-inverse-chi-square posterior."""
        return self.tau * np.sqrt(self.dof / rng.chisquare(self.dof, n))

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "tau_per_lnC": self.tau, "dof": self.dof, "folds": self.folds,
                "tau_from_folds": self.tau_folds, "prior_tau": PRIOR[self.quantity][0],
                "prior_weight": PRIOR[self.quantity][1]}


def combine(param: np.ndarray, rng: np.random.Generator, n: int, law: LawError | None = None,
            distance: float = 0.0, noise_sd: float = 0.0) -> np.ndarray:
    """n Monte-Carlo draws of a log-scale quantity: parameter draws (resampled), plus the law error
    at ``distance`` e-folds beyond the sweep, plus normal noise of sd ``noise_sd``."""
    param = param[np.isfinite(param)]
    if not param.size:
        return np.empty(0)
    out = rng.choice(param, n)
    if law is not None and distance > 0:
        out = out + law.draws(rng, n) * distance * rng.standard_normal(n)
    if noise_sd > 0:
        out = out + noise_sd * rng.standard_normal(n)
    return out


def interval(log_draws: np.ndarray) -> list[float] | None:
    """The 95 % interval of exp(draws), or None without draws."""
    return ci_pair(np.exp(log_draws)) if log_draws.size else None


def parts(param: np.ndarray, law: LawError | None, distance: float, noise_sd: float) -> dict:
    """What an interval is made of, as standard deviations on its log scale (``fit.json``)."""
    p = param[np.isfinite(param)]
    return {"parameter_sd": float(np.std(p)) if p.size > 1 else None,
            "law_sd": law.tau * distance if law is not None and distance > 0 else 0.0,
            "noise_sd": noise_sd, "distance_lnC": distance}
