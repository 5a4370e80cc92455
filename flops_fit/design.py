"""Sweep design: which runs would narrow the interval of N* at a target budget most per FLOP.

A user asks for a precision ("N* at 1e14 within 1.5x") rather than a ladder. After each wave the
sweep is fitted, and the next wave is *chosen* among candidates (a budget one rung above the sweep,
two rungs above, one rung below, more sizes at a budget already trained) by how much each is expected
to narrow the target's interval per FLOP it costs (the idea of active experiment selection for
scaling laws, Li et al. 2026; D-/V-optimal design asks the same of a fixed budget).

The expected interval of a design is the one Approach 2 reports, in the linear approximation that
its draws follow: ln N* of each budget k is measured with variance ``sd_k^2 + s^2`` (its profile's
error bar and the budgets' scatter about the power law, :class:`~flops_fit.fitting.approach2.Scatter`),
the power law ln N* = c + a ln C is their weighted least-squares line, and the law's own error adds
``E[tau^2] d^2`` at d e-folds of C beyond the largest budget (:mod:`flops_fit.fitting.intervals`).
The variance of the line's prediction at the target is then exact for given weights: no refit per
candidate is needed. A candidate changes the weights (more sizes: ``sd_k^2`` shrinks with the runs;
a new budget: its ``sd^2`` from the trend of the budgets' ``sd_k^2 m_k`` in ln C) and the distance
d. The prediction is calibrated on the fit itself: the ratio of the interval the fit reports to the
one this approximation gives for the current design scales every candidate's (it carries what the
approximation leaves out: t-like tails, censored draws, Approach 3 when it recommends).

This module is mechanics only: the goal (``sweep.precision``), the cap and the ladder come from the
recipe; :mod:`flops_fit.placement` turns a chosen candidate into runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

#: 95 % two-sided normal quantile: an interval spans 2·Z·sd on the log scale
Z = 1.959963984540054
#: a candidate must narrow the interval by at least this share (of its log width) to count as helping
MIN_GAIN = 0.02
#: a sweep whose last this-many chosen waves left the reported interval no narrower (by MIN_GAIN) than
#: the best before them stops: the approximation promised gains the fits do not show
STALL_WAVES = 2
#: the calibration ratio (reported over approximated width) is kept inside these bounds
CALIBRATION_BOUNDS = (0.5, 3.0)
#: variance factor of the law error's scaled-inverse-chi-square tau^2 when its dof gives no finite mean
HEAVY_TAIL_FACTOR = 3.0


@dataclass(frozen=True)
class BudgetPoint:
    """One fitted budget: its ln N* error bar and how many sizes measured it."""

    C: float
    sd: float
    sizes: int


@dataclass(frozen=True)
class Candidate:
    """Runs one wave could add: ``kind`` "budget" (a new budget of ``runs`` sizes) or "sizes" (``runs``
    more sizes at an existing budget ``C``), their FLOPs, and the target interval expected after them."""

    kind: str
    C: float
    runs: int
    flops: float
    width: float

    def describe(self) -> str:
        what = (f"add budget {self.C:.3g} ({self.runs} sizes)" if self.kind == "budget"
                else f"add {self.runs} sizes at budget {self.C:.3g}")
        expected = "" if math.isnan(self.width) else f", N* interval about x{self.width:.2f}"
        return f"{what}: about {self.flops:.2g} FLOPs{expected}"

    def to_dict(self) -> dict:
        """Strict JSON: an unknown expected width (no interval to scale yet) is null."""
        return {"kind": self.kind, "C": self.C, "runs": self.runs, "flops": self.flops,
                "expected_width": None if math.isnan(self.width) else self.width}


@dataclass(frozen=True)
class Design:
    """What the current fit says about the sweep's ability to predict N* at a target budget."""

    points: tuple[BudgetPoint, ...]
    #: sd of the budgets' ln N* about the power law beyond their error bars
    scatter_sd: float
    #: expected squared law error per e-fold of C squared
    law_tau2: float
    #: reported interval (hi/lo) over the one this approximation gives, on the log scale
    calibration: float = 1.0

    def sd(self, target: float) -> float:
        """Approximate sd of ln N* at ``target`` (power-law prediction + law error)."""
        C = np.array([p.C for p in self.points])
        var = np.array([p.sd ** 2 for p in self.points]) + self.scatter_sd ** 2
        X = np.column_stack([np.ones(C.size), np.log(C) - np.log(C).mean()])
        info = X.T @ (X / var[:, None])
        x = np.array([1.0, math.log(target) - np.log(C).mean()])
        param = float(x @ np.linalg.solve(info, x))
        d = max(0.0, math.log(target) - math.log(C.max()))
        return math.sqrt(param + self.law_tau2 * d * d)

    def width(self, target: float) -> float:
        """Expected hi/lo of the 95 % interval of N* at ``target``."""
        return math.exp(2 * Z * self.calibration * self.sd(target))

    def calibrated(self, target: float, reported_width: float) -> Design:
        """This design scaled so that its width at ``target`` is the ``reported_width`` of the fit."""
        ratio = math.log(reported_width) / (2 * Z * self.sd(target))
        return replace(self, calibration=float(np.clip(ratio, *CALIBRATION_BOUNDS)))

    # -- candidates -----------------------------------------------------------------------------------
    def new_budget_sd(self, C: float, sizes: int) -> float:
        """ln N* error bar of a new budget of ``sizes`` sizes: the trend of sd_k^2·m_k in ln C (flat with
        fewer than 3 budgets; never falling with C, as a profile flattens relative to the noise)."""
        lnC = np.log([p.C for p in self.points])
        y = np.log([p.sd ** 2 * p.sizes for p in self.points])
        if lnC.size >= 3:
            slope, intercept = np.polyfit(lnC, y, 1)
            slope = float(np.clip(slope, 0.0, 1.0))
            intercept = float(np.mean(y - slope * lnC))
        else:
            slope, intercept = 0.0, float(np.mean(y))
        return math.sqrt(math.exp(intercept + slope * math.log(C)) / sizes)

    def with_budget(self, C: float, sizes: int) -> Design:
        point = BudgetPoint(C, self.new_budget_sd(C, sizes), sizes)
        return replace(self, points=self.points + (point,))

    def with_sizes(self, C: float, extra: int) -> Design:
        points = tuple(replace(p, sd=p.sd * math.sqrt(p.sizes / (p.sizes + extra)), sizes=p.sizes + extra)
                       if math.isclose(p.C, C, rel_tol=1e-9) else p for p in self.points)
        return replace(self, points=points)


def ladder_ratio(budgets: list[float]) -> float:
    """The ladder's rung: the median ratio of consecutive budgets (2 for a single budget)."""
    b = sorted(set(budgets))
    ratios = [hi / lo for lo, hi in zip(b, b[1:])]
    return float(np.median(ratios)) if ratios else 2.0


def rungs(placed: list[float], ladder: list[float]) -> tuple[float, float, float | None]:
    """(next rung above, the one after it, one rung below) the placed budgets: the ladder's own budgets
    while it has unplaced ones above, then its median ratio continued. Below, one rung under the
    ladder's smallest budget at most (None past it): the smallest budgets are the cheapest, but the
    farther a budget lies from the target the less its optimum says about it (a law that bends with
    scale is fitted to the wrong end), which the interval's linear model cannot see."""
    ratio = ladder_ratio(ladder)
    lo, hi = min(placed), max(placed)
    above = sorted(b for b in ladder if b > hi * (1 + 1e-9))
    first = above[0] if above else hi * ratio
    second = above[1] if len(above) > 1 else first * ratio
    below = lo / ratio
    return first, second, below if below >= min(ladder) / ratio * (1 - 1e-9) else None


def candidates(design: Design, target: float, placed: list[float], ladder: list[float], sizes_per_budget: int,
               sizes_per_wave: int, densifiable: list[float] | None = None) -> list[Candidate]:
    """The waves one could add next: the next two rungs above the placed budgets, one below, and
    ``sizes_per_wave`` more sizes at each fitted budget (those in ``densifiable``, when given); each
    with its FLOPs (every run of a budget spends the budget) and the target's expected interval."""
    first, second, below = rungs(placed, ladder)
    out = [Candidate("budget", C, sizes_per_budget, sizes_per_budget * C,
                     design.with_budget(C, sizes_per_budget).width(target))
           for C in (first, second, below) if C is not None and C <= target * (1 + 1e-9)]
    out += [Candidate("sizes", p.C, sizes_per_wave, sizes_per_wave * p.C,
                      design.with_sizes(p.C, sizes_per_wave).width(target)) for p in design.points
            if densifiable is None or any(math.isclose(p.C, b, rel_tol=1e-9) for b in densifiable)]
    return out


@dataclass(frozen=True)
class Decision:
    """What the sweep does next: ``status`` "add" (train ``candidate``), "reached", "cap" (``candidate``
    would pass the cap), "no_gain" (no wave helps) or, without a goal, "advice" (``candidate`` is what one
    more wave would buy), with the numbers behind it and a sentence for the user."""

    status: str
    target: float
    width: float | None
    goal: float | None
    spent: float
    candidate: Candidate | None
    message: str
    #: hi - lo of the loss interval at the target, and the goal for it (None: N* only)
    loss_width: float | None = None
    loss_goal: float | None = None

    def to_dict(self) -> dict:
        return {"status": self.status, "target": self.target, "width": self.width, "goal": self.goal,
                "loss_width": self.loss_width, "loss_goal": self.loss_goal,
                "flops_spent": self.spent, "message": self.message,
                "candidate": None if self.candidate is None else self.candidate.to_dict()}


def best_candidate(options: list[Candidate], now: float) -> Candidate | None:
    """The candidate with the largest narrowing of the log width per FLOP among those narrowing it by
    ``MIN_GAIN`` of ``now``'s log width (None: none does)."""
    helping = [c for c in options if math.log(c.width) < (1 - MIN_GAIN) * math.log(now)]
    return max(helping, key=lambda c: (math.log(now) - math.log(c.width)) / c.flops) if helping else None


def path_to(design: Design, target: float, goal: float, *, placed: list[float], ladder: list[float],
            sizes_per_budget: int, sizes_per_wave: int, max_waves: int = 8) -> tuple[list[Candidate], bool]:
    """The waves the sweep would choose one after another, each on the design the ones before it leave,
    until the expected interval at ``target`` is within ``goal``: (those waves, whether they reach it).
    Stops unreached when no candidate helps (the law's own error dominates) or after ``max_waves``."""
    steps: list[Candidate] = []
    placed = list(placed)
    now = design.width(target)
    while now > goal and len(steps) < max_waves:
        best = best_candidate(candidates(design, target, placed, ladder, sizes_per_budget, sizes_per_wave), now)
        if best is None:
            break
        steps.append(best)
        if best.kind == "budget":
            design, placed = design.with_budget(best.C, best.runs), placed + [best.C]
        else:
            design = design.with_sizes(best.C, best.runs)
        now = best.width
    return steps, now <= goal


def outlook(fit, target: float, goal: float | None, *, placed: list[float], ladder: list[float], spent: float,
            cap: float | None, sizes_per_budget: int, sizes_per_wave: int, loss_goal: float | None = None,
            history: Sequence[float] = ()) -> dict:
    """Where a finished sweep stands on the interval of N* at ``target`` and what the next step would cost:
    ``fit.json``'s ``design.outlook``. With a goal: reached, or why not (the :func:`decide` status) and the
    waves expected to reach it with their FLOPs; without: what the best next wave would buy."""
    decision = decide(fit, target, goal, placed=placed, ladder=ladder, spent=spent, cap=cap,
                      sizes_per_budget=sizes_per_budget, sizes_per_wave=sizes_per_wave, loss_goal=loss_goal,
                      history=history)
    design, width = design_of(fit, target)
    steps: list[Candidate] = []
    reachable = None
    if decision.status == "reached":
        message = f"precision reached: {decision.message}; the sweep placed {spent:.3g} FLOPs"
    elif goal is None:
        steps = [decision.candidate] if decision.candidate is not None else []
        now = "no interval" if width is None else f"now x{width:.2f}"
        message = decision.message if decision.status != "advice" or design is None else (
            f"one more wave would buy: {decision.candidate.describe()} at {target:.3g} ({now})")
    elif design is None or decision.status == "no_gain" or width is None or width <= goal:  # nothing to plan from, or the loss open
        steps = [decision.candidate] if decision.candidate is not None else []
        message = f"precision not reached ({decision.status}): {decision.message}"
    else:
        steps, reachable = path_to(design, target, goal, placed=placed, ladder=ladder,
                                   sizes_per_budget=sizes_per_budget, sizes_per_wave=sizes_per_wave)
        waves = ", then ".join(s.describe().split(":")[0] for s in steps)
        if reachable:
            message = (f"precision not reached ({decision.status}): N* interval at {target:.3g} is x{width:.2f}; "
                       f"to reach x{goal:g}, {waves}: about {sum(c.flops for c in steps):.2g} FLOPs more")
        else:
            message = (f"precision not reached ({decision.status}): N* interval at {target:.3g} is x{width:.2f}; "
                       f"no sequence of candidate waves brings it within x{goal:g}"
                       + (f" (about x{steps[-1].width:.2f} after {waves})" if steps else "")
                       + ": the law's own error dominates; ask for a wider goal or a nearer budget")
    return {"status": decision.status, "target": target, "goal": goal, "width": width,
            "loss_goal": loss_goal, "loss_width": decision.loss_width, "flops_spent": spent,
            "reachable": reachable, "flops_more": sum(s.flops for s in steps) if steps else None,
            "steps": [c.to_dict() for c in steps],
            "message": message}


def design_of(fit, target: float) -> tuple[Design | None, float | None]:
    """(the design behind ``fit``'s interval of N* at ``target``, calibrated; that interval's hi/lo).

    None for the design when the fit has fewer than 2 interior budgets or no law-error record; None
    for the width when the fit reports no interval (degenerate draws, too few budgets)."""
    pred = fit.prediction_at(target)
    rec = None if pred is None else pred.recommended
    ci = None if rec is None else (rec.ci or {}).get("N")
    width = ci[1] / ci[0] if ci is not None and all(v is not None and v > 0 for v in ci) else None
    iso = fit.isoflop
    points = tuple(BudgetPoint(b.C, b.sd_lnN_opt, b.n_sizes) for b in iso.per_budget
                   if b.interior and b.sd_lnN_opt is not None and b.n_sizes)
    law = ((fit.uncertainty or {}).get("law_error") or {}).get("N")
    if len(points) < 2 or law is None:
        return None, width
    dof = float(law["dof"])
    tau2 = law["tau_per_lnC"] ** 2 * (dof / (dof - 2) if dof > 2 else HEAVY_TAIL_FACTOR)
    design = Design(points, float((iso.scatter or {}).get("sd_lnN") or 0.0), float(tau2))
    return (design.calibrated(target, width) if width is not None else design), width


def loss_width(fit, target: float) -> float | None:
    """hi - lo of the 95 % loss interval at ``target`` (None without one)."""
    pred = fit.prediction_at(target)
    ci = None if pred is None else pred.ci.get("loss")
    return None if ci is None or any(v is None for v in ci) else float(ci[1] - ci[0])


def decide(fit, target: float, goal: float | None, *, placed: list[float], ladder: list[float], spent: float,
           cap: float | None, sizes_per_budget: int, sizes_per_wave: int, densifiable: list[float] | None = None,
           loss_goal: float | None = None, history: Sequence[float] = ()) -> Decision:
    """The next wave toward an interval of N* at ``target`` no wider than ``goal`` (hi/lo) and, given
    ``loss_goal``, a loss interval no wider than it, spending at most ``cap`` FLOPs in all (``spent`` so
    far). Without a goal the best next wave per FLOP is described and nothing is added ("advice").

    The candidate with the largest narrowing per FLOP (N* reached but not the loss: the cheapest rung
    above, as the loss interval grows with the distance extrapolated). Stops when the goal is reached,
    when that candidate would pass the cap, or when none narrows the interval by ``MIN_GAIN`` of its
    log width. The choice does not depend on the goal or the cap, only whether to stop does: a rerun
    with a tighter goal or a larger cap walks the same waves and goes on from where the first stopped,
    so it only adds runs. ``history``: the N* widths the earlier chosen waves were decided from (oldest
    first); when the last ``STALL_WAVES`` of them did not narrow the interval below the best before them,
    the sweep stops ("no_gain"): the reported interval is what counts, not the approximation's promise.
    """
    design, width = design_of(fit, target)
    lw = loss_width(fit, target)
    shown = "none" if width is None else f"x{width:.2f}"
    n_reached = goal is not None and width is not None and width <= goal
    loss_reached = loss_goal is None or (lw is not None and lw <= loss_goal)

    def decision(status: str, candidate: Candidate | None, message: str) -> Decision:
        return Decision(status, target, width, goal, spent, candidate, message, lw, loss_goal)

    def affordable(c: Candidate) -> bool:
        return cap is None or spent + c.flops <= cap

    if n_reached and loss_reached:
        loss_text = "" if loss_goal is None else f" and its loss interval {lw:.3g} within {loss_goal:g}"
        return decision("reached", None, f"N* interval at {target:.3g} is {shown}, within the goal x{goal:g}{loss_text}")
    if design is None:
        # too few interior budgets to judge: the next rung above gives the power law another point
        C = rungs(placed, ladder)[0]
        cand = Candidate("budget", C, sizes_per_budget, sizes_per_budget * C, math.nan)
        if not affordable(cand):
            return decision("cap", cand, f"no N* interval at {target:.3g} yet and the next rung ({cand.flops:.2g} "
                                         "FLOPs) would pass sweep.max_flops")
        return decision("add" if goal is not None else "advice", cand,
                        f"no N* interval at {target:.3g} yet (fewer than 2 budgets pin the power law): "
                        f"add budget {C:.3g} ({sizes_per_budget} sizes, about {cand.flops:.2g} FLOPs)")
    seen = [w for w in history if w is not None] + ([width] if width is not None else [])
    stalled = (not n_reached and len(seen) > STALL_WAVES
               and math.log(min(seen[-STALL_WAVES:])) > (1 - MIN_GAIN) * math.log(min(seen[:-STALL_WAVES])))
    options = candidates(design, target, placed, ladder, sizes_per_budget, sizes_per_wave, densifiable)
    now = design.width(target)
    above = [c for c in options if c.kind == "budget" and c.C > max(placed) * (1 + 1e-9)]
    if n_reached:  # the loss is what is missing: move the largest budget toward the target
        above.sort(key=lambda c: c.flops)
        if not above:
            return decision("no_gain", None, f"N* at {target:.3g} is within x{goal:g} but the loss interval "
                                             f"({lw:.3g}) is not within {loss_goal:g}, and no budget is left below the target")
        if not affordable(above[0]):
            return decision("cap", above[0], f"the loss interval at {target:.3g} ({lw:.3g}) is not within {loss_goal:g}; "
                                             f"the next rung ({above[0].describe()}) would pass sweep.max_flops")
        return decision("add", above[0], f"N* interval at {target:.3g} is {shown}, the loss interval {lw:.3g} > "
                                         f"{loss_goal:g}: {above[0].describe()}")
    stall = ""
    if stalled:  # cheap waves stopped paying: only a budget nearer the target (less extrapolation) is left
        options = above
        stall = (f"the last {STALL_WAVES} waves did not narrow it ({' -> '.join(f'x{w:.2f}' for w in seen[-STALL_WAVES - 1:])})"
                 ", so only a budget above is tried; ")
    best = best_candidate(options, now)
    if best is None:
        why = ("no budget above narrows it" if stalled
               else f"no candidate wave narrows it by {MIN_GAIN:.0%} or more")
        return decision("no_gain", None, f"N* interval at {target:.3g} is {shown}; {stall}{why} "
                                         "(the law's own error dominates)")
    if goal is None:
        return decision("advice", best, f"N* interval at {target:.3g} is {shown}; the next wave that buys the most "
                                        f"per FLOP: {best.describe()}")
    if not affordable(best):
        return decision("cap", best, f"N* interval at {target:.3g} is {shown}, goal x{goal:g}; the next wave "
                                     f"({best.describe()}) would pass sweep.max_flops")
    return decision("add", best, f"N* interval at {target:.3g} is {shown}, goal x{goal:g}: {stall}{best.describe()}")
