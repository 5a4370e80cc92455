"""Approach 2 of a table: one profile per isoFLOP budget, the power laws N* ~ C^a and D* ~ C^b, their
parameter uncertainty, and the rolling-origin predictions of each budget's N* from the budgets below
it (the math of one profile is :mod:`flops_fit.fitting.isoflop`).

Parameter uncertainty is a parametric bootstrap of every profile (:func:`isoflop.profile_draws`):
each draw redraws every budget's optimum, so no draw silently loses a budget (a draw whose minimum
leaves a budget's sizes is censored at their end). A draw in which fewer than half of the budgets keep
an interior minimum is *degenerate* and left out; when most draws are degenerate there is no interval
(the budgets at fault and the runs to add are named). Beyond their own error bars, the budgets'
optima scatter about the power law (:class:`Scatter`); the draws carry that scatter too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import chi2

from . import isoflop
from .bootstrap import ci_pair as _ci
from .flops_curve import FlopsCurve

#: above this share of degenerate draws an interval is not reported (it would describe a different sweep)
DEGENERATE_MAX = 0.5
#: above this share a warning says the interval rests on the draws where every budget kept its minimum
DEGENERATE_WARN = 0.2
#: a profile minimum below the lowest run of its budget by more than this share of its loss (or this many
#: run-noise sds) is flagged: between two sizes of a window the true minimum lies at most a few tenths of
#: a percent below the better of them, so a vertex 1 % below every run is the polynomial's, not the runs'
BELOW_RUNS_SHARE = 0.01
BELOW_RUNS_NOISE = 3.0
#: the cubic replaces the parabola for a whole sweep only when its later rolling-origin errors are below this
#: fraction of the parabola's (1: it predicts the budgets a user extrapolates from better; ties keep the parabola)
CUBIC_GAIN = 1.0
#: ... and only with this many rolling-origin folds (2 later folds to compare; with fewer, one noisy
#: fold would decide, which on the default design made N*(1e14) 4 % less accurate)
CUBIC_MIN_FOLDS = 3
#: prior scatter of the budgets' ln N* about the power law, and its weight in budgets (see Scatter)
SCATTER_PRIOR = (0.02, 2.0)


@dataclass
class Profiles:
    """The sweep's budgets (G) with point optima and R parametric-bootstrap draws of each optimum."""

    C: np.ndarray
    #: each budget's FLOPs per parameter-token at its optimum (D* = C / (k N*))
    k: np.ndarray
    lnN: np.ndarray
    loss: np.ndarray
    #: delta-method sd of ln N* (the power law's weights)
    sig: np.ndarray
    #: the point fit's minimum is interior (only these enter the power law)
    ok: np.ndarray
    #: (R, G) draws of ln N* and the profile minimum's loss; NaN where not ``valid``
    draws_lnN: np.ndarray
    draws_loss: np.ndarray
    valid: np.ndarray
    #: why a budget's point fit is not interior (None when it is)
    reasons: tuple[str | None, ...] = ()
    #: the scatter's randomness, fixed once so every subset of budgets sees the same draws: a normal
    #: deviate per draw and budget (R, G) and a uniform per draw (R,) for the scatter's own doubt
    scatter_z: np.ndarray | None = None
    scatter_u: np.ndarray | None = None
    #: each size's FLOPs per token: D* = C / fpt(N*) wherever N* is drawn; None: each budget's ``k``
    curve: FlopsCurve | None = None

    def ln_k(self, lnN: np.ndarray) -> np.ndarray:
        """ln FLOPs per parameter-token at optima ``lnN`` (..., G): the size's own, or each budget's k."""
        if self.curve is None:
            return np.broadcast_to(np.log(self.k), np.shape(lnN))
        return self.curve.ln_per_param(lnN)

    def scatter_draws(self, use: np.ndarray) -> np.ndarray:
        """(R, G) deviations of each budget's optimum from the power law, at the scatter the budgets in
        ``use`` show (measured on them alone: a fold of the backtest must not learn from the budget it
        predicts)."""
        scatter = Scatter.measure(self, use)
        return scatter.draws(self.scatter_u)[:, None] * self.scatter_z

    @property
    def lnC(self) -> np.ndarray:
        return np.log(self.C)

    def law(self, use: np.ndarray) -> tuple[float, float]:
        """(slope a, intercept ln k_N) of the weighted line through the point optima of ``use``."""
        a, lnk = isoflop.power_law(self.lnC, self.lnN[None], self.sig, use[None])
        return float(a[0]), float(lnk[0])

    def law_draws(self, use: np.ndarray, of: str = "N") -> tuple[np.ndarray, np.ndarray, float]:
        """(slopes, intercepts) of ln N* (``of="N"``) or ln D* (``"D"``) over the draws of the budgets
        in ``use``, and the share of degenerate draws: fewer than half of those budgets (or fewer than
        2) with an interior minimum. Degenerate draws are left out; a budget whose minimum a draw
        loses stays in it, censored at the end of its sizes."""
        interior = self.valid[:, use].sum(axis=1)
        ok = interior >= max(2, int(np.ceil(use.sum() / 2)))
        if not ok.any():
            return np.empty(0), np.empty(0), 1.0
        y = (self.draws_lnN + self.scatter_draws(use))[ok]
        if of == "D":
            y = self.lnC - self.ln_k(y) - y
        a, lnk = isoflop.power_law(self.lnC, y, self.sig, np.broadcast_to(use, y.shape))
        return a, lnk, float(1 - ok.mean())


@dataclass(frozen=True)
class Scatter:
    """How far the budgets' optima scatter about one power law beyond their own error bars (sd of ln N*).

    An optimum read off a window that is not centred on it is biased (a parabola through a skewed
    profile), by a different amount at each budget: a scatter no single profile's error bar shows,
    which the power law's residuals do. Estimated as in random-effects meta-analysis (Paule and
    Mandel 1982: the between-budget variance that makes the weighted residuals' chi-square equal
    its degrees of freedom), with a weak prior (``SCATTER_PRIOR``) because a sweep of 4 budgets
    leaves 2 degrees of freedom; drawn from its scaled-inverse-chi-square posterior in the bootstrap.
    The point estimate keeps the profiles' own weights (it reproduces published exponents); the
    scatter widens its draws only.
    """

    sd: float
    dof: float
    sd_from_budgets: float | None

    @classmethod
    def measure(cls, prof: Profiles, use: np.ndarray) -> Scatter:
        """The scatter of the budgets in ``use`` (interior ones) about their weighted power law."""
        sd0, nu0 = SCATTER_PRIOR
        use = use & prof.ok
        m = int(use.sum()) - 2
        if m < 1:
            return cls(sd0, nu0, None)
        x, y, s2 = prof.lnC[use], prof.lnN[use], prof.sig[use] ** 2

        def excess(t2: float) -> float:
            w = 1 / (s2 + t2)
            slope = np.polyfit(x, y, 1, w=np.sqrt(w))
            return float(np.sum(w * (y - np.polyval(slope, x)) ** 2) - m)

        t2 = 0.0
        if excess(0.0) > 0:
            hi = max(float(np.var(y)), 1e-6)
            while excess(hi) > 0:
                hi *= 4
            t2 = brentq(excess, 0.0, hi)
        scale2 = (m * t2 + nu0 * sd0 ** 2) / (m + nu0)
        return cls(float(np.sqrt(scale2)), float(m + nu0), float(np.sqrt(t2)))

    def draws(self, u: np.ndarray) -> np.ndarray:
        """The scatter's sd drawn from its posterior at uniforms ``u`` (scaled inverse chi-square)."""
        return self.sd * np.sqrt(self.dof / chi2.ppf(u, self.dof))

    def to_dict(self) -> dict:
        return {"sd_lnN": self.sd, "dof": self.dof, "sd_from_budgets": self.sd_from_budgets,
                "prior_sd": SCATTER_PRIOR[0], "prior_weight": SCATTER_PRIOR[1]}


def _entries(lnN, L, C, N, D, group, degree, noise_sd,
             curve: FlopsCurve | None = None) -> list[tuple[np.ndarray, dict, isoflop.ProfileFit]]:
    """(row indices, per-budget entry, point fit) per isoFLOP group at one degree; ``k`` is the FLOPs per
    parameter-token at the optimum (``curve``'s, else the group's median C / (N·D))."""
    out = []
    for g in np.unique(group[np.isfinite(group)]):
        idx = np.flatnonzero(group == g)
        pt = isoflop.fit_profile(lnN[idx], L[idx], np.ones((1, idx.size)), degree, with_sigma=True, noise_sd=noise_sd)
        n_opt = float(np.exp(pt.lnN[0])) if np.isfinite(pt.lnN[0]) else None
        kg = (float(np.median(C[idx] / (N[idx] * D[idx]))) if curve is None or n_opt is None
              else float(np.exp(curve.ln_per_param(np.log(n_opt)))))
        out.append((idx, {
            "C": float(g), "N_opt": n_opt, "D_opt": None if n_opt is None else float(g / (kg * n_opt)),
            "loss_opt": float(pt.loss[0]) if np.isfinite(pt.loss[0]) else None,
            "interior": bool(pt.interior[0]), "reason": pt.reason[0] or None,
            "degree": degree, "degree_reason": None,
            "sd_lnN_opt": float(pt.sigma[0]) if np.isfinite(pt.sigma[0]) else None,
            "n_runs": int(idx.size), "n_sizes": int(np.unique(N[idx]).size),
            "N_range": [float(N[idx].min()), float(N[idx].max())], "k": kg,
            "below_runs": False}, pt))
    return out


def rolling_origins(C: np.ndarray, ok: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(budget index k, mask of the interior budgets below it) for every interior budget with at least
    2 interior budgets below it, in ascending C: the folds of the rolling-origin backtest."""
    order = np.argsort(C)
    for pos, k in enumerate(order):
        below = np.zeros(C.size, bool)
        below[order[:pos]] = True
        below &= ok
        if ok[k] and below.sum() >= 2:
            yield int(k), below


def rolling_errors(C: np.ndarray, lnN: np.ndarray, sig: np.ndarray, ok: np.ndarray) -> list[tuple[int, float, float]]:
    """(budget index k, predicted − observed ln N*_k, distance ln C_k − ln C_largest_fitted) for every
    fold of :func:`rolling_origins`: the power law, each budget predicted from the budgets below only."""
    out = []
    for k, below in rolling_origins(C, ok):
        a, lnk = isoflop.power_law(np.log(C), lnN[None], sig, below[None])
        out.append((k, float(lnk[0] + a[0] * np.log(C[k]) - lnN[k]), float(np.log(C[k]) - np.log(C[below].max()))))
    return out


def choose_sweep_degree(lnN, L, C, N, D, group, requested: int | str, noise_sd) -> tuple[int, str, dict]:
    """One profile degree for the whole sweep, with why and the evidence.

    A degree chosen budget by budget moves the exponent (a cubic switched on for one budget by a
    slightly lower leave-one-out error moved a by 0.05–0.07 on public sweeps and predicted their
    largest budget worse), so the sweep shares one: the parabola, unless predicting each budget from
    the budgets below (rolling origin) shows that it fails where it matters. Only the later half of
    the folds is compared: early folds fit a line through 2 or 3 budgets and err by 0.1–0.5 in ln N*
    whatever the degree, while the later ones are the fits a user extrapolates from. The cubic must
    have the smaller median absolute error there (one wild fold does not decide). On Porian et al.'s
    wide grids the parabola's later folds err by -0.15 to -0.2 in ln N* and the cubic's by about
    0.05; on Chinchilla, Llama 3 and misfitting the cubic's err more.
    """
    if requested != "auto":
        return int(requested), f"degree {requested} requested", {}
    groups = np.unique(group[np.isfinite(group)])
    fewest = min((np.unique(N[group == g]).size for g in groups), default=0)
    if fewest < isoflop.AUTO_CUBIC_MIN_SIZES:
        return 2, (f"parabola: a budget has {fewest} distinct sizes (a cubic needs "
                   f"{isoflop.AUTO_CUBIC_MIN_SIZES} per budget to be tested)"), {}
    evidence = {}
    for deg in (2, 3):
        rows = [e for _, e, _ in _entries(np.log(N), L, C, N, D, group, deg, noise_sd)]
        sig = np.array([e["sd_lnN_opt"] or isoflop.SIGMA_FLOOR for e in rows])
        errs = [e for _, e, _ in rolling_errors(np.array([e["C"] for e in rows]),
                                                np.log([e["N_opt"] or np.nan for e in rows]), sig,
                                                np.array([e["interior"] for e in rows]))]
        late = errs[len(errs) // 2:]
        evidence[deg] = {"folds": len(errs), "errors_lnN": errs,
                         "late_median_abs_error_lnN": float(np.median(np.abs(late))) if late else None}
    two, three = evidence[2], evidence[3]
    if min(two["folds"], three["folds"]) < CUBIC_MIN_FOLDS:
        return 2, (f"parabola: fewer than {CUBIC_MIN_FOLDS} budgets can be predicted from the budgets below "
                   "to test it"), evidence
    ratio = three["late_median_abs_error_lnN"] / max(two["late_median_abs_error_lnN"], 1e-12)
    if ratio < CUBIC_GAIN:
        return 3, (f"cubic: predicting each budget from the budgets below, its later errors are {ratio:.2f}x "
                   "the parabola's"), evidence
    return 2, f"parabola: the cubic's later rolling-origin errors are {ratio:.2f}x its own", evidence


def draw_noise(lnN, L, entries, degree: int, noise_sd: float | None, rng: np.random.Generator,
               n_draws: int) -> tuple[np.ndarray, str]:
    """Each draw's run-to-run noise relative to the loss (R,), and where it comes from.

    The seed replicates' sd when measured (it is what the seed changes); else the profiles' residual
    sd pooled over budgets (relative to each budget's loss), drawn from its scaled inverse chi-square
    so a sweep of few runs carries the doubt about its own noise. Pooling, rather than one sd per
    budget, because 6 runs and a parabola leave 3 degrees of freedom: an sd that noisy made the
    intervals 3x too wide on the default design.
    """
    if noise_sd is not None:
        return np.full(n_draws, noise_sd / float(np.mean(L))), "seed replicates"
    rss = dof = 0.0
    for idx, _, _ in entries:
        # one degree more than the profile where the sizes allow: the residual then holds the runs'
        # noise rather than the parabola's misfit of a skewed profile (a bias, not noise)
        deg = degree + 1 if np.unique(lnN[idx]).size >= degree + 4 else degree
        r, d = isoflop.residual_ss(lnN[idx], L[idx] / L[idx].mean(), deg)
        rss, dof = rss + r, dof + max(d, 0)
    if dof <= 0:
        return np.full(n_draws, isoflop.SIGMA_FLOOR * 0.1), "no residual (a floor of 0.1 %)"
    return np.sqrt(rss / rng.chisquare(dof, n_draws)), f"isoFLOP profile residuals pooled over budgets ({dof:g} dof)"


def fit_isoflop(N, D, L, C, group, degree, noise_sd, warnings, rng: np.random.Generator,
                n_draws: int, curve: FlopsCurve | None = None) -> tuple[dict, Profiles | None]:
    """Per-budget profiles, the weighted power laws and their draws; returns (``fit.json["isoflop"]``,
    the profiles with their draws; None without isoFLOP groups).

    ``group`` is each run's isoFLOP budget (NaN: none), ``degree`` "auto", 2 or 3, ``n_draws`` the
    parametric-bootstrap draws (0: no intervals), ``curve`` each size's FLOPs per token (D* = C / fpt(N*);
    None: each group's median C / N·D); messages are appended to ``warnings``.
    """
    lnN = np.log(N)
    deg, why, evidence = choose_sweep_degree(lnN, L, C, N, D, group, degree, noise_sd)
    iso: dict = {"a": None, "b": None, "N_coef": None, "D_coef": None, "ci": {"a": None, "b": None}, "degree": degree,
                 "degree_used": deg, "degree_reason": why, "degree_evidence": evidence,
                 "per_budget": [], "skipped": None, "degenerate_fraction": None}
    entries = _entries(lnN, L, C, N, D, group, deg, noise_sd, curve)
    if not entries:
        iso["skipped"] = "Approach 2 skipped: the runs form no isoFLOP groups. Approach 3 alone is reported."
        return iso, None
    rel_sd, noise_source = draw_noise(lnN, L, entries, deg, noise_sd, rng, n_draws)
    iso["draw_noise"] = {"relative_sd": float(np.median(rel_sd)) if rel_sd.size else None, "source": noise_source}
    draws = [isoflop.profile_draws(lnN[idx], L[idx], deg, rel_sd * L[idx].mean(), rng) for idx, _, _ in entries]
    for (idx, e, _), d in zip(entries, draws):
        e["degree_reason"] = why
        rss, dof = isoflop.residual_ss(lnN[idx], L[idx], deg)
        e["resid_sd"] = float(np.sqrt(rss / dof)) if dof > 0 else None
        if not e["interior"]:
            warnings.append(f"Approach 2: budget C={e['C']:.3g} left out ({idx.size} runs, {e['n_sizes']} "
                            f"sizes, degree {deg}): {e['reason']}")
        elif e["loss_opt"] < L[idx].min() - max(BELOW_RUNS_NOISE * (noise_sd or 0.0), BELOW_RUNS_SHARE * L[idx].min()):
            e["below_runs"] = True
            warnings.append(f"Approach 2: budget C={e['C']:.3g}: the fitted minimum {e['loss_opt']:.4g} lies below "
                            f"every run of the budget (best {L[idx].min():.4g}): the profile does not describe its "
                            f"runs near the minimum (a sharp drop then a plateau?); add sizes around N={e['N_opt']:.3g}")
    rows = [e for _, e, _ in entries]
    iso["per_budget"] = rows
    prof = Profiles(C=np.array([e["C"] for e in rows]), k=np.array([e["k"] for e in rows]),
                    lnN=np.log([e["N_opt"] or np.nan for e in rows]),
                    loss=np.array([e["loss_opt"] if e["loss_opt"] is not None else np.nan for e in rows]),
                    sig=np.array([e["sd_lnN_opt"] or isoflop.SIGMA_FLOOR for e in rows]),
                    ok=np.array([e["interior"] for e in rows]),
                    draws_lnN=np.stack([d.lnN for d in draws], axis=1) if n_draws else np.empty((0, len(rows))),
                    draws_loss=np.stack([d.loss for d in draws], axis=1) if n_draws else np.empty((0, len(rows))),
                    valid=np.stack([d.valid for d in draws], axis=1) if n_draws else np.empty((0, len(rows)), bool),
                    reasons=tuple(e["reason"] for e in rows), curve=curve)
    iso["scatter"] = Scatter.measure(prof, prof.ok).to_dict()
    prof.scatter_z = rng.standard_normal(prof.draws_lnN.shape)
    prof.scatter_u = rng.uniform(1e-6, 1.0, n_draws)
    if prof.ok.sum() < 2:
        iso["skipped"] = (f"Approach 2 skipped: {prof.ok.sum()} budget(s) with an interior optimum among {len(rows)} isoFLOP "
                          "group(s) (need 2 or more). Approach 3 alone is reported.")
        warnings.append(iso["skipped"])
        return iso, prof
    a, lnkN = prof.law(prof.ok)
    lnDs = prof.lnC - prof.ln_k(prof.lnN) - prof.lnN
    b, lnkD = isoflop.power_law(prof.lnC, lnDs[None], prof.sig, prof.ok[None])
    iso.update(a=a, b=float(b[0]), N_coef=float(np.exp(lnkN)), D_coef=float(np.exp(lnkD[0])),
               n_budgets_used=int(prof.ok.sum()))
    if n_draws:
        ab, _, degenerate = prof.law_draws(prof.ok)
        iso["degenerate_fraction"] = degenerate
        if degenerate > DEGENERATE_MAX:
            iso["no_interval"] = degenerate_message(prof, degenerate)
            warnings.append(f"Approach 2: no interval: {iso['no_interval']}")
        else:
            if degenerate > DEGENERATE_WARN:
                warnings.append(f"Approach 2: in {degenerate:.0%} of bootstrap draws fewer than half of the budgets "
                                "kept a minimum inside their sizes; the intervals rest on the other draws")
            iso["ci"] = {"a": _ci(ab), "b": _ci(prof.law_draws(prof.ok, of="D")[0])}
    return iso, prof


def degenerate_message(prof: Profiles, share: float) -> str:
    """Why most draws are degenerate and what to add: the budgets whose redrawn minimum leaves their sizes."""
    lost = [(float(1 - prof.valid[:, g].mean()), prof.C[g]) for g in np.flatnonzero(prof.ok)]
    worst = ", ".join(f"C={c:.3g} ({s:.0%} of draws)" for s, c in sorted(lost, reverse=True) if s > 0.05)
    return (f"in {share:.0%} of bootstrap draws fewer than half of the budgets keep a minimum inside their sizes "
            f"(lost most often: {worst}): their runs do not pin the optimum down; add sizes around their lowest "
            "loss, seed replicates, or another budget")
