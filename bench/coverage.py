"""Coverage study: do the fit's 95 % intervals contain the truth, on the default sweep design?

Sweeps are simulated from KNOWN laws, placed as the default sweep places them, fitted with
``fit_table`` and scored against the truth, so every change to the fitter (intervals, degree choice,
robust loss, ...) is measured the same way. Only keys that are part of the fit's public record are
read: ``fit.isoflop.a``/``ci["a"]`` (Approach 2), ``fit.parametric.a``/``ci["a"]`` (Approach 3) and,
at each target budget, ``prediction_at(C).recommended.N``/``ci["N"]`` and ``.loss``/``ci["loss"]``.

Law families (parameters drawn per trial from a seeded generator; trial t of a family is the same
sweep whatever --trials is, so a shorter run is a prefix of a longer one):

* ``chinchilla``: E + A/N^alpha + B/D^beta, alpha, beta ~ U[0.25, 0.5], E ~ U[1, 2.5], A and B set so
  that the true N*(1e12 FLOPs, C = 6ND) is log-uniform in [1e4, 1e5] (the default tiny GPT's range)
  and the reducible loss at that optimum is U[15 %, 40 %] of E.
* ``misspecified``: a law the fitted form cannot express: the Chinchilla draw with exponents that
  drift with scale, alpha(N) = alpha0 + c_a·ln(N/N0), beta(D) = beta0 + c_b·ln(D/D0) with
  c ~ U[-0.015, 0.015] (N0, D0: the base law's optimum at 1e12; each term stays decreasing over
  e^±5 of N0, D0) and an interaction 2·rho·sqrt(A-term·B-term), rho ~ U[0.1, 0.5].
* ``shared_shift``: a Chinchilla draw whose every observed loss is multiplied by
  exp(d0 + d1·(ln N − ln N_ref)), d0 ~ N(0, 0.005), d1 ~ N(0, 0.002) drawn once per sweep (the lr
  calibration moves every run together), N_ref = the true N* of the smallest budget. The truth is
  the un-shifted law.

Every observation also carries run-to-run noise, multiplicative log-normal with sd ``--noise``.

The truth: N*(C) = argmin_N L(N, C/(6N)) (numeric, on ln N), L*(C) its value; a_true = the
least-squares slope of ln N*(C) on ln C over the sweep's budgets (the local exponent the sweep
measures; beta/(alpha+beta) for a Chinchilla-form law).

The design (config/config.yaml's budgets, target budgets and ``sweep`` knobs, read through
``Recipe``): at each budget ``sizes_per_budget`` sizes log-spaced over ``window_span``
(``recipe.target_params``), centred on
  - the first budget: the true N* times exp(N(0, 0.4)) (the ``tokens_per_param`` guess misses);
  - a later budget: a power law (least squares in log-log) through the TRUE optima of the budgets
    below (one budget below: its optimum times sqrt(C/C_below), as ``placement.predicted_center``),
    times exp(N(0, 0.2)) (the placer centres on the fitted optima below, which miss by about that).
Then, as the placer does, a budget whose profile ``placement.read_profile`` judges unbracketed (lowest
loss at an edge, or no interior parabola minimum) gets ``sizes_per_extension`` sizes on the open side
(``recipe.extension_params``; one per side when both are open), up to ``max_extensions`` times.
Sizes are continuous (no knob rounding); D = C/(6N); the ``budget`` column is the planned budget.
``--seed-replicates K`` adds K independent noise draws of every size of the smallest budget (same
N, D, same shift); they are not fitted rows: their spread is passed as ``noise_sd``, computed by
``pipeline.replicate_noise`` (pooled sd of the loss over each size's seeds), as the pipeline does.

Scoring: an interval "covers" when lo <= truth <= hi; a missing interval (no Approach 2 fit, no
recommendation, an interval of None, a fit that raised ValueError) is "no interval", counted apart
and never as covered, so coverage = covered / trials. Width: hi − lo for a and loss, hi/lo for N*.

    PYTHONPATH=$PWD python bench/coverage.py [--trials 40] [--bootstrap 400] [--noise 0.005]
                                             [--seed-replicates 1] [--families chinchilla,...]

The acceptance run of a fitter change uses --trials 100 or more (the 95 % binomial half-width at
100 trials is about 0.04).

Baseline: the fitter of main at 9352243, ``--trials 40`` (defaults otherwise), 2 shared CPU cores:

family          n            a (A2)           a (A3)         N*(1e13)         N*(1e14)       loss(1e13)       loss(1e14)  no-int  N14 err
                         cov  width       cov  width       cov  width       cov  width       cov  width       cov  width
chinchilla     40      1.00   0.447     1.00   0.203     1.00   x2.79     1.00   x7.93     0.95   0.034     0.97   0.072    0.00   x1.152
misspecified   40      1.00   0.488     0.93   0.233     1.00   x3.61     1.00  x10.25     0.78   0.033     0.65   0.072    0.00   x1.238
shared_shift   40      1.00   0.539     0.97   0.219     1.00   x3.37     1.00  x12.05     0.53   0.036     0.75   0.078    0.00   x1.248
all           120      1.00   0.497     0.97   0.219     1.00   x3.26     1.00   x9.76     0.75   0.035     0.79   0.074    0.00   x1.220
runs per sweep: median 24 (min 24, max 26); run time 50.1 s (120 trials, 0.42 s each)

Read: N* (the Approach-2 recommendation) and a from Approach 2 over-cover with wide intervals (a
median N*(1e14) interval spans x7.9 while the point misses by x1.15); the loss interval ignores a
misspecified law and a shared shift (coverage 0.53-0.78).

With the calibrated intervals (parametric profile bootstrap, budget scatter, rolling-origin law
error; docs/uncertainty.md), ``--trials 100``, 2026-12-06, 103 s:

family          n            a (A2)           a (A3)         N*(1e13)         N*(1e14)       loss(1e13)       loss(1e14)  no-int  N14 err
                         cov  width       cov  width       cov  width       cov  width       cov  width       cov  width
chinchilla    100      0.97   0.227     1.00   0.206     0.94   x1.73     0.96   x2.79     1.00   0.063     1.00   0.118    0.00   x1.154
misspecified  100      0.98   0.235     0.96   0.242     0.97   x1.83     0.96   x3.05     0.98   0.075     0.85   0.133    0.00   x1.193
shared_shift  100      0.97   0.221     0.98   0.196     0.92   x1.68     0.95   x2.84     0.92   0.071     0.96   0.126    0.00   x1.165
all           300      0.97   0.225     0.98   0.215     0.94   x1.74     0.96   x2.90     0.97   0.070     0.94   0.127    0.00   x1.167
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flops_fit import placement, recipe  # noqa: E402
from flops_fit.fitting import fit_table  # noqa: E402

#: budget at which a drawn law's optimum is pinned (N* in [1e4, 1e5] there)
ANCHOR_C = 1e12
FLOPS_PER_PARAM_TOKEN = 6.0
FAMILIES = ("chinchilla", "misspecified", "shared_shift")
#: (key, label, kind): kind "a" and "loss" are scored by hi − lo, "N" by hi/lo
METRICS = (("a2", "a (A2)", "a"), ("a3", "a (A3)", "a"), ("N13", "N*(1e13)", "N"), ("N14", "N*(1e14)", "N"),
           ("L13", "loss(1e13)", "loss"), ("L14", "loss(1e14)", "loss"))
#: sd of ln(centre / true N*) at the first budget and at later budgets
FIRST_OFFSET_SD, LATER_OFFSET_SD = 0.4, 0.2


# ------------------------------------------------------------------------------------------- laws
@dataclass(frozen=True)
class Law:
    """L(N, D) = E + x + y + 2·rho·sqrt(x·y), x = A·(N/N0)^-(alpha + c_alpha·ln(N/N0)), y likewise in D.

    With N0 = D0 = 1, c = rho = 0 it is the Chinchilla form E + A/N^alpha + B/D^beta.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    N0: float = 1.0
    D0: float = 1.0
    c_alpha: float = 0.0
    c_beta: float = 0.0
    rho: float = 0.0

    def loss(self, N, D):
        u, v = np.log(np.asarray(N, float) / self.N0), np.log(np.asarray(D, float) / self.D0)
        x = self.A * np.exp(-(self.alpha + self.c_alpha * u) * u)
        y = self.B * np.exp(-(self.beta + self.c_beta * v) * v)
        return self.E + x + y + 2.0 * self.rho * np.sqrt(x * y)

    @property
    def chinchilla_form(self) -> bool:
        return self.N0 == 1.0 and self.D0 == 1.0 and self.c_alpha == 0 and self.c_beta == 0 and self.rho == 0


@dataclass(frozen=True)
class Shift:
    """The shared shift of one sweep's observations: loss · exp(d0 + d1·(ln N − ln N_ref))."""

    d0: float = 0.0
    d1: float = 0.0
    N_ref: float = 1.0

    def factor(self, N):
        return np.exp(self.d0 + self.d1 * (np.log(np.asarray(N, float)) - math.log(self.N_ref)))


def chinchilla_law(rng: np.random.Generator, C: float = ANCHOR_C) -> Law:
    """A Chinchilla-form law with N*(C) log-uniform in [1e4, 1e5] and reducible loss 15–40 % of E there."""
    alpha, beta = rng.uniform(0.25, 0.5, 2)
    E = rng.uniform(1.0, 2.5)
    n_opt = math.exp(rng.uniform(math.log(1e4), math.log(1e5)))
    d_opt = C / (FLOPS_PER_PARAM_TOKEN * n_opt)
    reducible = rng.uniform(0.15, 0.40) * E
    # at the optimum along C = 6ND: alpha·A/N^alpha = beta·B/D^beta; the two terms add to `reducible`
    x, y = reducible * beta / (alpha + beta), reducible * alpha / (alpha + beta)
    return Law(E=E, A=x * n_opt**alpha, B=y * d_opt**beta, alpha=alpha, beta=beta)


def misspecified_law(rng: np.random.Generator, C: float = ANCHOR_C) -> Law:
    """A Chinchilla draw with scale-drifting exponents and an A·B interaction term."""
    base = chinchilla_law(rng, C)
    n0 = chinchilla_optimum(base, C)
    d0 = C / (FLOPS_PER_PARAM_TOKEN * n0)
    c_alpha, c_beta = rng.uniform(-0.015, 0.015, 2)
    return Law(E=base.E, A=base.A / n0**base.alpha, B=base.B / d0**base.beta, alpha=base.alpha, beta=base.beta,
               N0=n0, D0=d0, c_alpha=c_alpha, c_beta=c_beta, rho=rng.uniform(0.1, 0.5))


def shifted_law(rng: np.random.Generator, budgets: Sequence[float]) -> tuple[Law, Shift]:
    """A Chinchilla draw and the shift of its observations (the truth stays the un-shifted law)."""
    law = chinchilla_law(rng)
    d0, d1 = rng.normal(0.0, 0.005), rng.normal(0.0, 0.002)
    return law, Shift(d0, d1, true_optimum(law, min(budgets))[0])


def draw_law(family: str, rng: np.random.Generator, budgets: Sequence[float]) -> tuple[Law, Shift]:
    if family == "chinchilla":
        return chinchilla_law(rng), Shift()
    if family == "misspecified":
        return misspecified_law(rng), Shift()
    if family == "shared_shift":
        return shifted_law(rng, budgets)
    raise ValueError(f"unknown law family {family!r}; choose from {', '.join(FAMILIES)}")


# ------------------------------------------------------------------------------------------ truth
def chinchilla_optimum(law: Law, C: float) -> float:
    """Closed-form N*(C) of a Chinchilla-form law: G·(C/6)^a, G = (alpha·A/(beta·B))^(1/(alpha+beta))."""
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta))
    return G * (C / FLOPS_PER_PARAM_TOKEN) ** (law.beta / (law.alpha + law.beta))


def true_optimum(law: Law, C: float) -> tuple[float, float]:
    """(N*, L*) at budget C: argmin over ln N of L(N, C/(6N)): a grid for the basin, then Brent."""
    def f(lnN):
        N = np.exp(lnN)
        return law.loss(N, C / (FLOPS_PER_PARAM_TOKEN * N))

    grid = np.linspace(math.log(10.0), math.log(C / FLOPS_PER_PARAM_TOKEN / 10.0), 801)
    i = int(np.argmin(f(grid)))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(lambda t: float(f(t)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    return float(math.exp(res.x)), float(res.fun)


def true_exponent(law: Law, budgets: Sequence[float]) -> float:
    """a_true: least-squares slope of ln N*(C) on ln C over the sweep's budgets."""
    lnC = np.log(np.asarray(budgets, float))
    lnN = np.log([true_optimum(law, c)[0] for c in budgets])
    return float(np.polyfit(lnC, lnN, 1)[0])


@dataclass(frozen=True)
class Truth:
    a: float
    N: dict[float, float]
    loss: dict[float, float]


def truth_of(law: Law, budgets: Sequence[float], targets: Sequence[float]) -> Truth:
    optima = {c: true_optimum(law, c) for c in targets}
    return Truth(true_exponent(law, budgets), {c: o[0] for c, o in optima.items()},
                 {c: o[1] for c, o in optima.items()})


# ----------------------------------------------------------------------------------------- design
@dataclass(frozen=True)
class Design:
    """The default sweep's budgets, targets and window knobs (config/config.yaml + schema defaults)."""

    budgets: tuple[float, ...]
    targets: tuple[float, ...]
    sizes_per_budget: int
    window_span: float
    max_extensions: int
    sizes_per_extension: int

    @classmethod
    def default(cls, config_path: Path = ROOT / "config" / "config.yaml") -> Design:
        from flops_fit.config import load_config
        from flops_fit.recipe import Recipe

        config = load_config(config_path)
        r = Recipe.from_config(config)
        return cls(tuple(sorted(float(b) for b in config["budgets"])), tuple(float(c) for c in config["target_budgets"]),
                   r.sizes_per_budget, r.window_span, r.max_extensions, r.sizes_per_extension)


def window_centre(law: Law, design: Design, i: int, rng: np.random.Generator) -> float:
    """Where budget i's first window is centred (see the module docstring)."""
    C = design.budgets[i]
    if i == 0:
        return true_optimum(law, C)[0] * math.exp(rng.normal(0.0, FIRST_OFFSET_SD))
    below = design.budgets[:i]
    n_below = [true_optimum(law, c)[0] for c in below]
    if len(below) >= 2:
        slope, intercept = np.polyfit(np.log(below), np.log(n_below), 1)
        centre = math.exp(intercept + slope * math.log(C))
    else:
        centre = n_below[-1] * math.sqrt(C / below[-1])
    return centre * math.exp(rng.normal(0.0, LATER_OFFSET_SD))


def observe(law: Law, shift: Shift, N: Sequence[float], C: float, noise: float,
            rng: np.random.Generator) -> np.ndarray:
    """Observed losses at budget C: the law, the sweep's shared shift and log-normal run noise."""
    N = np.asarray(N, float)
    D = C / (FLOPS_PER_PARAM_TOKEN * N)
    return law.loss(N, D) * shift.factor(N) * np.exp(rng.normal(0.0, noise, N.size))


def extension_sizes(params: Sequence[float], side: str, design: Design) -> list[float]:
    """The placer's extension of a continuous-size window (``Placer.extension`` without the knob)."""
    sides = ["smaller", "larger"] if side == "both" else [side]
    count = max(1, design.sizes_per_extension // 2) if side == "both" else design.sizes_per_extension
    return [n for s in sides for n in recipe.extension_params(list(params), s, count)]


@dataclass
class Sweep:
    """A simulated sweep: the fitted rows, and the replicate rows (noise only)."""

    runs: pd.DataFrame
    replicates: pd.DataFrame = field(default_factory=pd.DataFrame)


def place_budget(law: Law, shift: Shift, design: Design, i: int, noise: float,
                 rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """Budget i's sizes and observed losses: its window, extended while its profile is unbracketed."""
    C = design.budgets[i]
    N = recipe.target_params(window_centre(law, design, i, rng), design.sizes_per_budget, design.window_span)
    L = list(observe(law, shift, N, C, noise, rng))
    for _ in range(design.max_extensions):
        table = pd.DataFrame({"params": N, "run_id": [str(j) for j in range(len(N))]})
        profile = placement.read_profile(C, table, dict(zip(table["run_id"], L)))
        if profile.bracketed:
            break
        new = extension_sizes(N, profile.open_side or "both", design)
        N, L = N + new, L + list(observe(law, shift, new, C, noise, rng))
    return N, L


def budget_rows(C: float, N: Sequence[float], L: Sequence[float], role: str = "sweep") -> list[dict]:
    """Fit-table rows of one budget's runs (D = C / 6N; the size of a continuous knob is N itself, so a
    replicate shares its run's size and two runs of a budget never do)."""
    return [{"N": n, "D": C / (FLOPS_PER_PARAM_TOKEN * n), "C": C, "budget": C, "loss": loss, "size": n,
             "role": role} for n, loss in zip(N, L)]


def place_sweep(law: Law, shift: Shift, design: Design, noise: float, seed_replicates: int,
                rng: np.random.Generator) -> Sweep:
    """The default design on a known law: windows, extensions while unbracketed, seed replicates."""
    rows, reps = [], []
    for i, C in enumerate(design.budgets):
        N, L = place_budget(law, shift, design, i, noise, rng)
        rows += budget_rows(C, N, L)
        if i == 0:
            for k in range(seed_replicates):
                reps += budget_rows(C, N, observe(law, shift, N, C, noise, rng), role="replicate")
    return Sweep(pd.DataFrame(rows), pd.DataFrame(reps))


def replicate_noise_sd(sweep: Sweep) -> float | None:
    """The run-to-run noise the pipeline would pass to the fit (``pipeline.replicate_noise``)."""
    if not len(sweep.replicates):
        return None
    from flops_fit.pipeline import replicate_noise

    table = pd.concat([sweep.runs, sweep.replicates], ignore_index=True)
    table["run_id"] = [f"r{j}" for j in range(len(table))]
    return replicate_noise(table, dict(zip(table["run_id"], table["loss"])))


# ---------------------------------------------------------------------------------------- scoring
def fit_sweep(sweep: Sweep, design: Design, bootstrap: int, seed: int, noise_sd: float | None):
    return fit_table(sweep.runs[["N", "D", "C", "budget", "loss"]], budgets=design.budgets,
                     target_budgets=design.targets, bootstrap=bootstrap, seed=seed, noise_sd=noise_sd)


def _score(value, ci, truth: float, kind: str) -> tuple[bool | None, float | None, float | None]:
    """(covered, width, point) of one interval; covered None: no interval."""
    if ci is None or value is None or any(v is None or not np.isfinite(v) for v in ci):
        return None, None, value
    lo, hi = ci
    width = hi / lo if kind == "N" else hi - lo
    return bool(lo <= truth <= hi), float(width), value


def score(fit, truth: Truth, targets: Sequence[float]) -> dict[str, tuple]:
    """Per metric key (METRICS): (covered or None, width or None, point estimate or None)."""
    out = {"a2": _score(fit.isoflop.a, fit.isoflop.ci.get("a"), truth.a, "a"),
           "a3": _score(fit.parametric.a, fit.parametric.ci.get("a"), truth.a, "a")}
    for C, tag in zip(targets, ("13", "14")):
        p = fit.prediction_at(C)
        rec = None if p is None else p.recommended
        out["N" + tag] = (None, None, None) if rec is None else _score(rec.N, (rec.ci or {}).get("N"), truth.N[C], "N")
        out["L" + tag] = (None, None, None) if p is None else _score(p.loss, p.ci.get("loss"), truth.loss[C], "loss")
    return out


def run_trial(family: str, trial: int, design: Design, *, noise: float, bootstrap: int,
              seed_replicates: int, seed: int = 0) -> dict:
    """One simulated sweep of one family, fitted and scored: a flat record."""
    rng = np.random.default_rng([seed, FAMILIES.index(family), trial])
    law, shift = draw_law(family, rng, design.budgets)
    truth = truth_of(law, design.budgets, design.targets)
    sweep = place_sweep(law, shift, design, noise, seed_replicates, rng)
    noise_sd = replicate_noise_sd(sweep)
    record = {"family": family, "trial": trial, "a_true": truth.a, "runs": len(sweep.runs), "noise_sd": noise_sd,
              "failed": None}
    try:
        fit = fit_sweep(sweep, design, bootstrap, seed + trial, noise_sd)
        scores = score(fit, truth, design.targets[:2])
    except ValueError as exc:  # an unusable table: every interval is missing
        record["failed"] = str(exc)
        scores = {key: (None, None, None) for key, _, _ in METRICS}
    for key, (covered, width, point) in scores.items():
        record[key + "_cov"], record[key + "_width"] = covered, width
    n14 = scores["N14"][2]
    c14 = design.targets[1]
    record["N14_err"] = None if n14 is None else max(n14 / truth.N[c14], truth.N[c14] / n14)
    return record


# ------------------------------------------------------------------------------------------ table
def summarise(records: pd.DataFrame) -> pd.DataFrame:
    """One row per family and 'all': coverage (covered / trials), median width, no-interval share."""
    out = []
    for name, g in [*records.groupby("family", sort=False), ("all", records)]:
        row = {"family": name, "trials": len(g)}
        missing = np.zeros(len(g), bool)
        for key, _, _ in METRICS:
            cov = g[key + "_cov"]
            missing |= cov.isna().to_numpy()
            row[key + "_cov"] = float((cov == True).sum() / len(g))  # noqa: E712 (None is not covered)
            row[key + "_width"] = float(np.nanmedian(g[key + "_width"].astype(float))) if cov.notna().any() else math.nan
            row[key + "_none"] = int(cov.isna().sum())
        row["no_interval"] = float(missing.mean())
        row["N14_err"] = float(np.nanmedian(g["N14_err"].astype(float))) if g["N14_err"].notna().any() else math.nan
        out.append(row)
    return pd.DataFrame(out)


def format_table(summary: pd.DataFrame) -> str:
    """Coverage / median width per metric (N*: width as hi/lo), no-interval share, N*(1e14) point error."""
    head = f"{'family':<13}{'n':>4} " + "".join(f"{label:>17}" for _, label, _ in METRICS) + f"{'no-int':>8}{'N14 err':>9}"
    sub = f"{'':<18}" + "".join(f"{'cov  width':>17}" for _ in METRICS)
    lines = [head, sub]
    for _, r in summary.iterrows():
        cells = []
        for key, _, kind in METRICS:
            w = r[key + "_width"]
            ws = "-" if not np.isfinite(w) else (f"x{w:.2f}" if kind == "N" else f"{w:.3f}")
            cells.append(f"{r[key + '_cov']:.2f} {ws:>7}".rjust(17))
        lines.append(f"{r['family']:<13}{r['trials']:>4} " + "".join(cells)
                     + f"{r['no_interval']:>8.2f}{('x%.3f' % r['N14_err']):>9}")
    return "\n".join(lines)


def missing_note(summary: pd.DataFrame) -> str:
    """Which intervals were missing, per family (empty when none was)."""
    notes = []
    for _, r in summary[summary["family"] != "all"].iterrows():
        parts = [f"{label} {r[key + '_none']}" for key, label, _ in METRICS if r[key + "_none"]]
        if parts:
            notes.append(f"  {r['family']}: no interval for " + ", ".join(parts))
    return "\n".join(notes)


def run_study(families: Sequence[str], trials: int, design: Design, *, noise: float, bootstrap: int,
              seed_replicates: int, seed: int = 0, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    records = []
    for family in families:
        for t in range(trials):
            records.append(run_trial(family, t, design, noise=noise, bootstrap=bootstrap,
                                     seed_replicates=seed_replicates, seed=seed))
        if progress:
            progress(f"{family}: {trials} trials done")
    return pd.DataFrame(records)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=40, help="trials per family (acceptance run: 100 or more)")
    ap.add_argument("--bootstrap", type=int, default=400, help="bootstrap resamples per fit")
    ap.add_argument("--noise", type=float, default=0.005, help="sd of the multiplicative log-normal run noise")
    ap.add_argument("--seed-replicates", type=int, default=1, help="extra seeds of the smallest budget's sizes")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated law families")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--records", type=Path, help="write the per-trial records to this TSV")
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    for f in families:
        if f not in FAMILIES:
            ap.error(f"unknown family {f!r}; choose from {', '.join(FAMILIES)}")

    design = Design.default()
    start = time.perf_counter()
    records = run_study(families, args.trials, design, noise=args.noise, bootstrap=args.bootstrap,
                        seed_replicates=args.seed_replicates, seed=args.seed,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    elapsed = time.perf_counter() - start
    summary = summarise(records)
    print(f"coverage of the 95 % intervals: budgets {', '.join(f'{b:.3g}' for b in design.budgets)}; "
          f"{design.sizes_per_budget} sizes over x{design.window_span:g}, up to {design.max_extensions} extensions "
          f"of {design.sizes_per_extension}; noise sd {args.noise}; seed replicates {args.seed_replicates}; "
          f"bootstrap {args.bootstrap}; seed {args.seed}")
    print(format_table(summary))
    note = missing_note(summary)
    if note:
        print(note)
    failed = records["failed"].notna().sum()
    if failed:
        print(f"  fits that raised ValueError: {failed}")
    print(f"runs per sweep: median {records['runs'].median():.0f} (min {records['runs'].min()}, max {records['runs'].max()})")
    print(f"run time {elapsed:.1f} s ({len(records)} trials, {elapsed / len(records):.2f} s each)")
    if args.records:
        records.to_csv(args.records, sep="\t", index=False)


if __name__ == "__main__":
    main()
