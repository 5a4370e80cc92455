"""The fit's results as typed records: the contract between the fitter and everything that reads it.

``fit_table`` returns a :class:`ScalingFit`; ``fit.json`` is its :meth:`ScalingFit.to_dict` and
:func:`read_fit` turns the file back into the same object, so plotting, the recommender, the summary
page and :class:`flops_fit.ScalingResult` read attributes (``fit.isoflop.a``) whose names a type
checker and a reader can follow, instead of string keys spread over the code base.

Values a fit could not estimate are None (the JSON has null: non-finite numbers are never written).
An interval is a ``(lo, hi)`` pair at the fit's ``bootstrap.ci_level``, or None without a bootstrap.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flops_fit.io import write_json

from .flops_curve import FlopsCurve

Interval = tuple[float, float] | None


def strict(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays to Python and non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [strict(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _interval(value: Any) -> Interval:
    """A stored interval, or None when absent or when either end is not a finite number."""
    if not value or any(v is None or not math.isfinite(v) for v in value):
        return None
    return float(value[0]), float(value[1])


def _intervals(values: dict | None) -> dict[str, Interval]:
    return {name: _interval(v) for name, v in (values or {}).items()}


def _flat(cls: type, data: dict) -> Any:
    """``cls`` from the keys of ``data`` that are its fields; a missing key takes the field's default."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Noise:
    """Run-to-run loss noise the fit was given (seed replicates): a floor on each profile's residual sd."""

    sd: float | None = None
    source: str | None = None


@dataclass(frozen=True)
class ParametricFit:
    """Approach 3: L(N, D) = E + A/N^alpha + B/D^beta; N* ~ C^a, D* ~ C^b with a = beta/(alpha+beta)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    a: float
    b: float
    ci: dict[str, Interval]
    objective: float
    huber_delta: float
    converged: bool
    optimizer_message: str
    gradient_norm: float | None
    at_bounds: tuple[str, ...]
    bootstrap_converged_fraction: float | None
    #: k in C = k·N·D (6 without attention FLOPs): the frontier spends budgets in the sweep's own FLOPs
    flops_per_param_token: float
    #: the known lower bound on the loss that E was searched above (None: no floor); every loss the law
    #: predicts is then at least this. Absent from a fit.json written before the option: None
    loss_floor: float | None = None
    #: each size's FLOPs per token the frontier was solved with ({"N": [...], "flops_per_token": [...]},
    #: :class:`~.flops_curve.FlopsCurve`); None: C = flops_per_param_token·N·D (a table without them)
    flops_per_token: dict | None = None

    def loss(self, N: Any, D: Any) -> Any:
        """The law's loss at (N, D) (scalars or numpy arrays)."""
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def tokens_at(self, C: float, N: np.ndarray) -> np.ndarray:
        """D that spends C at sizes N, in the FLOPs the frontier was solved in (the isoFLOP lines of a plot)."""
        if self.flops_per_token is None:
            return C / (self.flops_per_param_token * np.asarray(N, float))
        curve = FlopsCurve.from_sizes(np.asarray(self.flops_per_token["N"]),
                                      np.asarray(self.flops_per_token["flops_per_token"]))
        return C / np.exp(curve.ln_per_token(np.log(N)))

    @classmethod
    def from_dict(cls, data: dict) -> ParametricFit:
        return _flat(cls, {**data, "ci": _intervals(data.get("ci")), "at_bounds": tuple(data.get("at_bounds") or ())})


@dataclass(frozen=True)
class BudgetOptimum:
    """One isoFLOP profile: the loss-minimising N at budget C, or why there is none (``reason``)."""

    C: float
    N_opt: float | None
    D_opt: float | None
    loss_opt: float | None
    #: the minimum lies inside the sizes trained (only interior optima enter the power law)
    interior: bool
    reason: str | None
    degree: int | None = None
    degree_reason: str | None = None
    #: standard deviation of ln N_opt from the profile's fit (its error bar)
    sd_lnN_opt: float | None = None
    n_runs: int = 0
    n_sizes: int = 0
    N_range: tuple[float, float] | None = None
    #: this budget's FLOPs per parameter-token, C / (N·D): D_opt = C / (k·N_opt)
    k: float | None = None
    #: the fitted minimum lies more than a few residual sds below every run of the budget
    below_runs: bool = False
    #: residual sd of the profile (>= the run-to-run noise when known): the bootstrap's noise level
    resid_sd: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> BudgetOptimum:
        return _flat(cls, {**data, "N_range": _interval(data.get("N_range"))})


@dataclass(frozen=True)
class IsoflopFit:
    """Approach 2: the per-budget optima and the power laws N* = N_coef·C^a, D* = D_coef·C^b through them."""

    a: float | None
    b: float | None
    N_coef: float | None
    D_coef: float | None
    ci: dict[str, Interval]
    degree: int | str
    per_budget: tuple[BudgetOptimum, ...]
    #: why there is no power law (too few interior budgets); None when there is one
    skipped: str | None = None
    n_budgets_used: int = 0
    #: where the isoFLOP groups came from (the budget column, the planned budgets, separated C values)
    grouping: str | None = None
    #: the one profile degree of the sweep, why, and the rolling-origin evidence behind an "auto" choice
    degree_used: int | None = None
    degree_reason: str | None = None
    degree_evidence: dict | None = None
    #: share of bootstrap draws in which some budget's profile had no minimum inside its sizes
    degenerate_fraction: float | None = None
    #: why there is no interval (most draws degenerate) and what to add; None when there is one
    no_interval: str | None = None
    #: the budgets' scatter about the power law beyond their error bars (sd of ln N*; approach2.Scatter)
    scatter: dict | None = None
    #: the run noise the profiles are redrawn with (relative to the loss) and where it comes from
    draw_noise: dict | None = None

    def N_at(self, C: float) -> float | None:
        return None if self.a is None else self.N_coef * C**self.a

    @classmethod
    def from_dict(cls, data: dict) -> IsoflopFit:
        per_budget = tuple(BudgetOptimum.from_dict(e) for e in data.get("per_budget") or ())
        return _flat(cls, {**data, "ci": _intervals(data.get("ci")), "per_budget": per_budget})


@dataclass(frozen=True)
class Recommended:
    """The N*, D* a prediction recommends, from the approach the fit chose (``method``)."""

    method: str
    N: float
    D: float
    tokens_per_param: float
    ci: dict[str, Interval]

    @classmethod
    def from_dict(cls, data: dict) -> Recommended:
        return _flat(cls, {**data, "ci": _intervals(data.get("ci"))})


@dataclass(frozen=True)
class Prediction:
    """Both approaches at one target budget C, the recommendation, and the cautions that come with it."""

    C: float
    approach: str
    #: Approach 3's compute-optimal N, D and loss
    N: float
    D: float
    loss: float
    tokens_per_param: float
    ci: dict[str, Interval]
    isoflop_N: float | None = None
    isoflop_D: float | None = None
    isoflop_ci: dict[str, Interval] = field(default_factory=dict)
    #: C over the largest fitted budget
    extrapolation_factor: float = 1.0
    recommended: Recommended | None = None
    flags: tuple[str, ...] = ()
    #: what each interval is made of (sds on its log scale: parameter, law error, noise; the distance)
    interval_parts: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> Prediction:
        rec = data.get("recommended")
        return _flat(cls, {
            **data, "ci": _intervals(data.get("ci")), "isoflop_ci": _intervals(data.get("isoflop_ci")),
            "recommended": None if rec is None else Recommended.from_dict(rec), "flags": tuple(data.get("flags") or ()),
        })


@dataclass(frozen=True)
class ApproachChoice:
    """Which approach recommends N* (``method``; None: neither can) and, when none, the runs to add."""

    requested: str
    method: str | None
    reason: str | None = None
    add_runs: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"from": self.requested, "method": self.method, "reason": self.reason, "add_runs": list(self.add_runs)}

    @classmethod
    def from_dict(cls, data: dict) -> ApproachChoice:
        return cls(data.get("from"), data.get("method"), data.get("reason"), tuple(data.get("add_runs") or ()))


@dataclass(frozen=True)
class Backtest:
    """The largest budget held out: its N* (and loss) predicted from the other runs, against the observed."""

    held_out_budget: float | None = None
    predicted_N_opt: float | None = None
    observed_N_opt: float | None = None
    N_opt_ratio: float | None = None
    predicted_loss: float | None = None
    observed_loss: float | None = None
    loss_error: float | None = None
    #: which law predicted each quantity
    approach: dict[str, str] | None = None
    #: why no backtest was possible; None when it ran
    reason: str | None = None
    #: the largest budget's 95 % intervals (law error from the earlier folds, observation noise added)
    N_ci: Interval = None
    loss_ci: Interval = None
    #: every budget predicted from the budgets below it (rolling origin), with interval and verdict
    folds: tuple[dict, ...] = ()
    #: the largest budget's N* and loss inside their intervals (None: not checked)
    passed: bool | None = None
    #: per quantity: [folds inside, folds checked]
    folds_inside: dict[str, list[int]] | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Backtest:
        return _flat(cls, {**data, "N_ci": _interval(data.get("N_ci")), "loss_ci": _interval(data.get("loss_ci")),
                           "folds": tuple(data.get("folds") or ())})


@dataclass(frozen=True)
class Frontier:
    """Approach 3's N*, D*, L* along a grid of budgets, with bootstrap quantiles (bands, fan chart)."""

    C: tuple[float, ...]
    N: tuple[float, ...]
    D: tuple[float, ...]
    loss: tuple[float, ...]
    quantile_levels: tuple[float, ...]
    #: per quantity (N, D, ratio = D/N): one row per level, one column per C; None without a bootstrap
    quantiles: dict[str, list[list[float]]] | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Frontier:
        return _flat(cls, {**data, **{k: tuple(data[k]) for k in ("C", "N", "D", "loss", "quantile_levels")}})


@dataclass(frozen=True)
class Bootstrap:
    resamples: int
    seed: int
    ci_level: float
    scheme: str


@dataclass(frozen=True)
class Cost:
    """What the sweep trained (``sweep.reuse``): each stable prefix counted once, against the same runs
    trained separately from step 0. Every run's own C still counts its whole token history."""

    trained_flops: float
    separate_runs_flops: float
    #: runs that are cooldowns of a shared stable run, and the stable runs they share
    branched_runs: int = 0
    stable_runs: int = 0

    @property
    def ratio(self) -> float:
        """trained / separate (1 without reuse)."""
        return self.trained_flops / self.separate_runs_flops if self.separate_runs_flops else 1.0

    @classmethod
    def from_dict(cls, data: dict | None) -> Cost | None:
        if not data:
            return None
        return cls(float(data["trained_flops"]), float(data["separate_runs_flops"]),
                   int(data.get("branched_runs") or 0), int(data.get("stable_runs") or 0))


@dataclass(frozen=True)
class ScalingFit:
    """Everything ``fit.json`` holds: both approaches, predictions at the target budgets, the checks."""

    n_runs: int
    #: what N counts (figure labels); None for a table whose convention is unknown
    N_convention: str | None
    noise: Noise
    parametric: ParametricFit
    isoflop: IsoflopFit
    predictions: tuple[Prediction, ...]
    recommend: ApproachChoice
    backtest: Backtest
    frontier: Frontier
    bootstrap: Bootstrap
    warnings: tuple[str, ...]
    #: the compute the sweep trained (filled by the workflow's fit from the runs table; None otherwise)
    cost: Cost | None = None
    #: what the intervals are made of: law errors measured by the backtest, run noise, degenerate draws
    uncertainty: dict | None = None
    #: the sweep's design (filled by the workflow's fit): the precision asked for, each wave's runs, FLOPs
    #: and interval, and the outlook (reached or not, what the next waves would cost); flops_fit.design
    design: dict | None = None
    #: the training data (filled by the workflow's fit from the runs table): its size in samples, the most
    #: epochs a fitted run saw, and the epochs each target's recommended D* would take
    #: (flops_fit.pipeline.data_record); None for a table without epochs
    data: dict | None = None

    @property
    def ci_level(self) -> float:
        return self.bootstrap.ci_level

    def prediction_at(self, C: float, rel_tol: float = 1e-6) -> Prediction | None:
        """The prediction at target budget ``C`` (None when C is not a target budget of the fit)."""
        return next((p for p in self.predictions if math.isclose(p.C, C, rel_tol=rel_tol)), None)

    def to_dict(self) -> dict:
        """The content of ``fit.json`` (strict JSON: intervals as lists, non-finite numbers as None)."""
        out = dataclasses.asdict(self)
        out["recommend"] = self.recommend.to_dict()
        return strict(out)

    @classmethod
    def from_dict(cls, data: dict) -> ScalingFit:
        return cls(
            n_runs=int(data["n_runs"]),
            N_convention=data.get("N_convention"),
            noise=_flat(Noise, data.get("noise") or {}),
            parametric=ParametricFit.from_dict(data["parametric"]),
            isoflop=IsoflopFit.from_dict(data["isoflop"]),
            predictions=tuple(Prediction.from_dict(p) for p in data.get("predictions") or ()),
            recommend=ApproachChoice.from_dict(data.get("recommend") or {}),
            backtest=Backtest.from_dict(data.get("backtest") or {}),
            frontier=Frontier.from_dict(data["frontier"]),
            bootstrap=_flat(Bootstrap, data["bootstrap"]),
            warnings=tuple(data.get("warnings") or ()),
            cost=Cost.from_dict(data.get("cost")),
            uncertainty=data.get("uncertainty"),
            design=data.get("design"),
            data=data.get("data"),
        )


def write_fit_json(fit: ScalingFit, path: str | Path) -> None:
    """``fit.json``: strict JSON (non-finite numbers are null), written atomically."""
    write_json(fit.to_dict(), path)


def read_fit(path: str | Path) -> ScalingFit:
    """``fit.json`` as written by :func:`write_fit_json`."""
    return ScalingFit.from_dict(json.loads(Path(path).read_text()))
