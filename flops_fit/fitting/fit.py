"""``fit_table``: Approach 2 + Approach 3 with bootstrap intervals and predictions at target budgets.

FLOP convention: C defaults to 6·N·D. Given each size's FLOPs per token (``flops_per_token``, a
:class:`~.flops_curve.FlopsCurve` from the runs table: the workflow's measured FLOPs), the compute-optimal
frontier of Approach 3 spends C = fpt(N)·D and every D* is C / fpt(N*), in Approach 2 too: a
size's cost per token is not 6N (nor one constant times N) once attention, convolutions or
normalisations count. Without it, the frontier uses C = k·N·D with k = median(C / (N·D)) (a table
with C counted another way keeps its own notion of a budget), and Approach 2 D* = C / (k_g·N*) with
k_g each group's median ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import advice, approach2, backtest, parametric
from .bootstrap import CI_LEVEL, ci_pair, resample_weights
from .flops_curve import FlopsCurve
from .intervals import LawError, combine, interval, parts
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
              n_convention: str | None = None, loss_floor: float | None = None,
              flops_per_token: FlopsCurve | None = None) -> ScalingFit:
    """Fit both approaches to a table of runs; return the fit (``fit.json`` is its ``to_dict()``).

    ``df`` has columns N, D, loss and optionally C, budget, run_id, status; several rows at the same
    (budget, N) are seed replicates and all are kept. ``budgets`` are the planned isoFLOP budgets
    when known; a ``budget`` column in the table wins over them. ``degree`` is the isoFLOP profile
    polynomial, one for the sweep ("auto": :func:`approach2.choose_sweep_degree`). ``noise_sd`` is the run-to-run
    loss noise (seed replicates), a floor on each profile's residual scale. ``recommend_from`` is
    the approach that recommends N* (the other is reported beside it). ``n_convention`` says what N
    counts (figure labels); None for a table whose convention is unknown. ``loss_floor`` is a known
    lower bound on the loss (a source's entropy rate): Approach 3's E, in the point fit, every
    bootstrap resample and the backtest, is searched at or above it, so no predicted loss is below it;
    it bounds the law, the observed losses are fitted as they are (a finite eval set can score a little
    under the floor), and runs clearly below it are warned about. ``flops_per_token`` is each size's
    FLOPs per token (the module docstring); None: one k from the table's C. Raises ValueError for an
    unusable table or arguments.
    """
    _check_options(degree, bootstrap, huber_delta, noise_sd, recommend_from)
    targets = np.asarray(list(target_budgets), float)
    if targets.size and (~np.isfinite(targets) | (targets <= 0)).any():
        raise ValueError(f"target budgets must be positive FLOP counts, got {list(target_budgets)}")
    df, source, warnings = prepare_table(df, budgets)
    N, D, L, C, group = (df[c].to_numpy(float) for c in ("N", "D", "loss", "C", "budget"))
    k = float(np.median(C / (N * D)))
    curve = flops_per_token or FlopsCurve.constant(k)
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
    par = {**point.params, "ci": {name: ci_pair(boot[name]) for name in PARAMS},
           "objective": point.objective, "huber_delta": huber_delta,
           "converged": point.converged, "optimizer_message": point.message,
           "gradient_norm": point.grad_norm, "at_bounds": point.at_bounds,
           "bootstrap_converged_fraction": float(conv_b.mean()) if bootstrap else None,
           "flops_per_param_token": k, "loss_floor": loss_floor,
           "flops_per_token": None if flops_per_token is None else flops_per_token.to_dict()}
    warnings += parametric.floor_warnings(data, point.theta)
    if not point.converged:
        warnings.append(f"Approach 3: the optimiser did not report convergence ({point.message})")
    if point.at_bounds:
        warnings.append(f"Approach 3: parameter(s) {', '.join(point.at_bounds)} at a bound of the search box; "
                        "the fit is not an interior optimum and its exponents are unreliable")

    rng = np.random.default_rng(seed)
    iso, prof = approach2.fit_isoflop(N, D, L, C, group, degree, noise["sd"], warnings, rng, bootstrap,
                                      flops_per_token)
    iso["grouping"] = source
    bt, law_n, law_l = backtest.run(df, prof, huber_delta, rng, bootstrap, loss_floor)
    run_sd, run_source = run_noise(noise["sd"], iso)
    ctx = Context(rng, bootstrap, law_n, law_l, run_sd, float(C.max()), curve, loss_floor)
    _exponent_intervals(par, iso, prof, ctx)
    _exponent_warnings(par, iso, warnings)

    lnC_hi = np.log(max(C.max(), targets.max() if targets.size else 0.0))
    c_grid = np.exp(np.linspace(np.log(C.min()), lnC_hi, FRONTIER_POINTS))
    predictions = _predictions(point.theta, theta_b, targets, iso, prof, ctx, warnings)
    choice = advice.choose_approach(iso, recommend_from)
    advice.annotate(predictions, choice, bt)
    if _disjoint(par["ci"]["a"], iso["ci"].get("a")):
        warnings.append(f"Approach 2 and 3 disagree on a (N* ~ C^a): {iso['a']:.3f} {_rounded(iso['ci']['a'])} "
                        f"against {par['a']:.3f} {_rounded(par['ci']['a'])}; the isoFLOP profiles and the "
                        "parametric law do not describe the same optimum (check that the sweeps bracket the "
                        "optimum and that the law fits all runs: see the residual plot)")
    return ScalingFit.from_dict(strict({  # plain Python, non-finite -> None, as fit.json holds it
        "n_runs": int(len(df)),
        "N_convention": n_convention,
        "noise": noise,
        "parametric": par,
        "isoflop": iso,
        "predictions": predictions,
        "recommend": choice,
        "backtest": bt,
        "uncertainty": {"parts": "parameter draws + run-to-run noise (losses a run will show) + law error "
                                 "(rolling-origin backtest) growing with the e-folds of C extrapolated",
                        "law_error": {"N": law_n.to_dict(), "loss": law_l.to_dict()},
                        "run_noise_sd": run_sd, "run_noise_source": run_source,
                        "degenerate_fraction": iso["degenerate_fraction"]},
        "frontier": _frontier(point.theta, theta_b, curve, c_grid),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "ci_level": CI_LEVEL,
                      "scheme": "Approach 2: each profile redrawn from its fitted curve and the run noise "
                                "(parametric bootstrap; no budget is dropped); Approach 3: runs resampled "
                                "with replacement within their isoFLOP budget group"},
        "warnings": warnings,
    }))


def noise_record(noise_sd: float | None) -> dict:
    """``fit.json["noise"]``: the run-to-run loss noise the fit was given (seed replicates), or none.

    Runs at the same (budget, N) are kept as replicates either way; their spread is not turned into
    a noise estimate here, because a table's repeated (N, D) may differ in more than the seed (a
    learning-rate sweep, say), and that spread is not noise.
    """
    return {"sd": None if noise_sd is None else float(noise_sd), "source": None if noise_sd is None else "given"}


@dataclass(frozen=True)
class Context:
    """What every interval of one fit is made from (:mod:`flops_fit.fitting.intervals`)."""

    rng: np.random.Generator
    draws: int
    law_n: LawError
    law_l: LawError
    #: loss noise of one run (absolute), added to predicted losses
    run_sd: float
    #: the largest fitted budget: extrapolation distances are counted from it
    c_max: float
    #: FLOPs per token of each size (C = fpt(N)·D)
    curve: FlopsCurve
    #: a known lower bound on the loss: no loss interval reaches below it
    loss_floor: float | None = None

    def distance(self, c: float) -> float:
        return max(0.0, float(np.log(c / self.c_max)))


def run_noise(noise_sd: float | None, iso: dict) -> tuple[float, str]:
    """The loss noise of one run: the seed replicates' sd when measured, else the profiles' pooled
    residual sd (which also holds the profile's misfit, so it errs wide)."""
    if noise_sd is not None:
        return float(noise_sd), "seed replicates"
    sds = [e["resid_sd"] for e in iso["per_budget"] if e.get("resid_sd") is not None]
    return (float(np.sqrt(np.mean(np.square(sds)))), "isoFLOP profile residuals") if sds else (0.0, "none")


def _rounded(ci: list[float] | None) -> str:
    return "none" if ci is None else f"[{ci[0]:.3g}, {ci[1]:.3g}]"


def _exponent_intervals(par: dict, iso: dict, prof, ctx: Context) -> None:
    """Approach 2's a and b: parameter draws plus the law error of one e-fold (a slope error of tau in
    a moves ln N* by tau per e-fold of C, which is what the backtest's tau measures). Approach 3's
    keep its bootstrap over runs: one law fitted to every run, whose intervals held the truth in 97-99 %
    of the coverage study's sweeps without a law term."""
    if iso["a"] is not None and ctx.draws and iso["ci"].get("a") is not None:
        ab, _, _ = prof.law_draws(prof.ok)
        bb, _, _ = prof.law_draws(prof.ok, of="D")
        slope = ctx.law_n.draws(ctx.rng, ab.size) * ctx.rng.standard_normal(ab.size)
        iso["ci"] = {"a": ci_pair(ab + slope), "b": ci_pair(bb - slope)}


def _exponent_warnings(par: dict, iso: dict, warnings: list[str]) -> None:
    """An exponent whose interval crosses 0 or excludes its own estimate is not a result."""
    for name, a, ci in (("Approach 2", iso["a"], iso["ci"].get("a")), ("Approach 3", par["a"], par["ci"]["a"])):
        if a is None or ci is None:
            continue
        if ci[0] <= 0 <= ci[1] or not ci[0] <= a <= ci[1]:
            what = "crosses 0" if ci[0] <= 0 <= ci[1] else f"excludes its own estimate {a:.3g}"
            warnings.append(f"{name}: the interval of a {_rounded(ci)} {what}: the sweep does not determine the "
                            "exponent; read a as a warning, not a result (add budgets or sizes)")


def _predictions(theta, theta_b, targets, iso, prof, ctx: Context, warnings) -> list[dict]:
    out = []
    if not targets.size:
        return out
    Np, Dp, Lp = parametric.frontier_per_size(theta, targets, ctx.curve)
    Nb, Db, Lb = parametric.frontier_per_size(theta_b, targets, ctx.curve) if theta_b.size else (None,) * 3
    if iso["a"] is not None and ctx.draws and iso["ci"].get("a") is not None:
        ab, lnkN, _ = prof.law_draws(prof.ok)
        bb, lnkD, _ = prof.law_draws(prof.ok, of="D")
    for j, c in enumerate(targets):
        dist = ctx.distance(c)
        entry = {"C": float(c), "approach": "parametric (Approach 3)", "N": float(Np[j]), "D": float(Dp[j]),
                 "loss": float(Lp[j]), "tokens_per_param": float(Dp[j] / Np[j]),
                 "ci": {"N": None, "D": None, "loss": None},
                 "isoflop_N": None, "isoflop_D": None, "isoflop_ci": {"N": None, "D": None},
                 "extrapolation_factor": float(c / ctx.c_max), "interval_parts": {}}
        if Nb is not None:
            lnN = combine(np.log(Nb[:, j]), ctx.rng, ctx.draws, ctx.law_n, dist)
            lnL = np.log(Lb[:, j])
            noise = ctx.run_sd / Lp[j]
            loss_ci = interval(combine(lnL, ctx.rng, ctx.draws, ctx.law_l, dist, noise))
            if loss_ci is not None and ctx.loss_floor is not None:
                loss_ci = [max(loss_ci[0], ctx.loss_floor), max(loss_ci[1], ctx.loss_floor)]
            entry["ci"] = {"N": interval(lnN), "D": interval(np.log(c) - ctx.curve.ln_per_token(lnN)), "loss": loss_ci}
            entry["interval_parts"].update(N=parts(np.log(Nb[:, j]), ctx.law_n, dist, 0.0),
                                           loss=parts(lnL, ctx.law_l, dist, noise))
        if iso["a"] is not None:
            entry["isoflop_N"] = iso["N_coef"] * c ** iso["a"]
            entry["isoflop_D"] = iso["D_coef"] * c ** iso["b"]
            if ctx.draws and iso["ci"].get("a") is not None:
                lnNb = lnkN + ab * np.log(c)
                law = ctx.law_n.draws(ctx.rng, lnNb.size) * dist * ctx.rng.standard_normal(lnNb.size)
                entry["isoflop_ci"] = {"N": interval(lnNb + law), "D": interval(lnkD + bb * np.log(c) - law)}
                entry["interval_parts"]["isoflop_N"] = parts(lnNb, ctx.law_n, dist, 0.0)
            if _disjoint(entry["ci"]["N"], entry["isoflop_ci"]["N"]):
                warnings.append(f"Approach 2 and 3 disagree on N* at C={c:.3g}: {entry['isoflop_N']:.3g} "
                                f"{_rounded(entry['isoflop_ci']['N'])} against {entry['N']:.3g} "
                                f"{_rounded(entry['ci']['N'])}")
        if c / ctx.c_max > advice.EXTRAPOLATION_WARN:
            warnings.append(f"target budget C={c:.3g} is {c / ctx.c_max:.0f}x the largest fitted budget: a long "
                            "extrapolation; its interval assumes the law's error keeps growing as it did "
                            "inside the sweep")
        out.append(entry)
    return out


def _frontier(theta, theta_b, curve: FlopsCurve, c_grid) -> dict:
    """N*, D*, L* along a grid of budgets, with bootstrap quantiles for bands and the fan chart."""
    Np, Dp, Lp = parametric.frontier_per_size(theta, c_grid, curve)
    fr = {"C": c_grid.tolist(), "N": Np.tolist(), "D": Dp.tolist(), "loss": Lp.tolist(),
          "quantile_levels": list(FAN_LEVELS), "quantiles": None}
    if theta_b.size:
        Nb, Db, _ = parametric.frontier_per_size(theta_b, c_grid, curve)
        q = np.asarray(FAN_LEVELS) * 100
        fr["quantiles"] = {name: np.nanpercentile(v, q, axis=0).tolist()
                           for name, v in (("N", Nb), ("D", Db), ("ratio", Db / Nb))}
    return fr
