"""Sweep policy: which sizes to train at each budget, and with which batch, steps and learning rate.

This module holds the *choices* (in the spirit of Marin's ``ScalingRecipe`` and OLMo-core's run
configurators); :mod:`flops_fit.planning` holds the arithmetic that turns them into exact runs and
:mod:`flops_fit.placement` the order in which budgets are placed. The knobs are the ``sweep:`` config section (documented
in the schema), held by one frozen :class:`Recipe`.

The default batch is DeepSeek LLM's B_opt = 0.292 · C^0.3271 tokens (Bi et al. 2024, fitted on their
own IsoFLOP sweeps): one batch per budget, so the points of an IsoFLOP profile differ in N alone,
and the batch grows with compute as published. (Fixed steps, batch ∝ D, gave the smallest model of a
window the largest batch, the reverse of every published rule; Porian et al.'s B ∝ N^(2/3) is one
config change away, but extrapolated to tiny models it leaves the largest of a window a few dozen
steps.) The learning rate starts from Porian et al.'s lr ∝ N^(−1/3) (0.0047 at 108M) and is then
*calibrated* on the user's own model and data by a short lr sweep at the smallest budget
(:mod:`flops_fit.calibration`), because its constant does not transfer across architectures, data
and batch sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flops_fit.errors import ConfigError


def expected_optimal_params(budget: float, tokens_per_param: float, flops_per_param_token: float = 6.0) -> float:
    """N that spends ``budget`` at ``tokens_per_param`` tokens per parameter: C = k·N·(r·N)."""
    return math.sqrt(budget / (flops_per_param_token * tokens_per_param))


def target_params(center: float, count: int, span: float) -> list[float]:
    """``count`` parameter counts log-spaced over ``span`` (largest/smallest), centred on ``center``.

    Log spacing matches the parabola-in-ln N fit; a centred window keeps its minimum unbiased.
    """
    half = math.log(span) / 2
    return [center * math.exp(-half + 2 * half * i / (count - 1)) for i in range(count)]


def select_sizes(
    budget: float, params_by_size: dict[float, int], count: int, center: float
) -> tuple[list[float], list[str]]:
    """Choose ``count`` consecutive candidate sizes (ordered by N) centred, in log N, on ``center``.

    Centring matters: an off-centre window biases the parabola's minimum (Open-Athena), and a window
    that does not bracket the optimum yields an edge minimum the fit has to refuse. Returns the sizes
    and warnings when the candidates cannot centre the window.
    """
    ordered = sorted(params_by_size, key=lambda s: params_by_size[s])
    warnings: list[str] = []
    if len(ordered) <= count:
        if len(ordered) < count:
            warnings.append(
                f"budget {budget:.3g}: only {len(ordered)} sizes in model.sizes, fewer than "
                f"sweep.sizes_per_budget={count}; training all of them"
            )
        return ordered, warnings
    target = math.log(center)
    logn = [math.log(params_by_size[s]) for s in ordered]
    starts = range(len(ordered) - count + 1)
    best = min(starts, key=lambda i: abs((logn[i] + logn[i + count - 1]) / 2 - target))
    if target < logn[best] or target > logn[best + count - 1]:
        warnings.append(
            f"budget {budget:.3g}: the expected optimum N≈{center:.3g} lies outside model.sizes "
            f"(N from {params_by_size[ordered[0]]:.3g} to {params_by_size[ordered[-1]]:.3g}); "
            f"add {'smaller' if target < logn[0] else 'larger'} sizes so the minimum can be bracketed"
        )
    return ordered[best : best + count], warnings


def extension_params(window_params: Sequence[float], side: str, count: int) -> list[float]:
    """``count`` parameter counts beyond the ``side`` ("smaller"/"larger") edge of a window.

    Spaced like the window itself (its median ratio between neighbours, at least 1.25×), so an
    extended profile stays evenly sampled in ln N.
    """
    ordered = sorted(window_params)
    ratios = sorted(b / a for a, b in zip(ordered, ordered[1:]) if b > a)
    step = max(ratios[len(ratios) // 2] if ratios else 2.0, 1.25)
    edge, sign = (ordered[-1], 1) if side == "larger" else (ordered[0], -1)
    return [edge * step ** (sign * k) for k in range(1, count + 1)]


def densify_params(window_params: Sequence[float], center: float, count: int) -> list[float]:
    """``count`` parameter counts inside a window, where they pin its optimum best: the ln-N midpoints of
    the gaps between its sizes, those nearest ``center`` (the fitted optimum) first."""
    ordered = sorted(set(window_params))
    mids = [math.sqrt(a * b) for a, b in zip(ordered, ordered[1:])]
    return sorted(mids, key=lambda m: abs(math.log(m / center)))[:count]


def learning_rate(params: int, reference_params: float, base_lr: float, exponent: float) -> float:
    """Peak lr = base_lr · (N / N_ref)^exponent (exponent 0: constant; −1/3: Porian et al.'s tuned law)."""
    return base_lr * (params / reference_params) ** exponent


def batch_and_steps(
    tokens: float, tokens_per_sample: int, steps: int | None, batch_size: int | None
) -> tuple[int, int]:
    """Return (batch_size in samples, steps) so that steps·batch·tokens_per_sample ≈ tokens.

    With a fixed step count the batch grows with D; the step count is then re-derived from the
    rounded batch, so the token count misses the budget by at most half a batch (≤ 1/(2·steps)).
    """
    samples = tokens / tokens_per_sample
    if batch_size is not None:
        return batch_size, max(1, round(samples / batch_size))
    if steps is None:
        raise ValueError("set sweep.steps or sweep.batch_size")
    # Of the two batch sizes next to samples/steps, keep the one whose rounded step count lands closer.
    candidates = {max(1, math.floor(samples / steps)), max(1, math.ceil(samples / steps))}
    plans = [(b, max(1, round(samples / b))) for b in sorted(candidates)]
    return min(plans, key=lambda plan: abs(plan[0] * plan[1] - samples))


@dataclass(frozen=True)
class BatchLaw:
    """``sweep.batch``: B = tokens · (N / reference_params)^params_exponent · (C / reference_flops)^flops_exponent."""

    tokens: float
    reference_params: float
    params_exponent: float
    reference_flops: float
    flops_exponent: float
    #: the law is never rounded down to nothing: at least this many samples per step
    min_samples: int

    def tokens_at(self, params: int, budget: float) -> float:
        """Tokens per optimizer step at N = ``params`` and C = ``budget``."""
        return (self.tokens * (params / self.reference_params) ** self.params_exponent
                * (budget / self.reference_flops) ** self.flops_exponent)


@dataclass(frozen=True)
class Precision:
    """``sweep.precision``: the interval asked for at a target budget, instead of a fixed ladder."""

    budget: float
    #: widest 95 % interval of N* (hi/lo)
    n_star: float
    #: widest 95 % interval of the loss (hi - lo); None: N* only
    loss: float | None
    #: budgets of the ladder placed before waves are chosen
    start_budgets: int
    #: sizes a "more sizes at a budget" wave adds
    sizes_per_wave: int

    @classmethod
    def from_config(cls, precision: dict | None) -> Precision | None:
        if precision is None:
            return None
        return cls(float(precision["budget"]), float(precision["N_star"]),
                   None if precision.get("loss") is None else float(precision["loss"]),
                   int(precision["start_budgets"]), int(precision["sizes_per_wave"]))


@dataclass(frozen=True)
class LrCalibration:
    """``sweep.lr_calibration``: the lr sweep at the smallest budget (:mod:`flops_fit.calibration`)."""

    enabled: bool
    factors: tuple[float, ...]
    #: the fitted exponent of lr*(N) is clipped to this range
    exponent_range: tuple[float, float]


@dataclass(frozen=True)
class Recipe:
    """The sweep's policy, from the ``sweep:`` config section (schema: ``flops_fit/schemas``), in one
    frozen object: the planner, the placer, the calibration and the recommender ask it instead of
    each reading config keys, so a knob has one reader and one meaning."""

    sizes_per_budget: int
    window_span: float
    tokens_per_param: float
    placement: str
    max_extensions: int
    sizes_per_extension: int
    #: explicit sizes per budget: (budget, sizes) pairs
    budget_sizes: tuple[tuple[float, tuple], ...]
    steps: int | None
    batch_size: int | None
    batch: BatchLaw
    flops_per_token: str
    lr: float
    lr_exponent: float
    lr_reference_params: float
    lr_reference_size: float | None
    lr_calibration: LrCalibration
    warmup_tokens_per_param: float
    max_warmup_fraction: float
    seed: int
    seed_replicates: int
    #: ``sweep.reuse``: ``none`` (every run from step 0) or ``branches`` (cooldowns off shared stable runs)
    reuse: str = "none"
    #: ``training.schedule.wsd_decay_fraction``: where a branch's cooldown starts (1 - f of its steps)
    decay_fraction: float = 0.2
    #: ``sweep.precision``: waves chosen for an interval at a target budget (None: the given ladder)
    precision: Precision | None = None
    #: ``sweep.max_flops``: cap on the placed runs' FLOPs (None: no cap)
    max_flops: float | None = None

    @classmethod
    def from_config(cls, config: dict) -> Recipe:
        """The recipe of a prepared config (defaults filled, schema-checked by :mod:`flops_fit.config`)."""
        sweep = config["sweep"]
        cal = sweep["lr_calibration"]
        if sweep["reuse"] == "branches" and sweep["steps"]:
            raise ConfigError(
                "sweep.reuse: branches needs one batch per size, but sweep.steps fixes the step count, so the "
                "batch grows with each run's tokens and no two budgets could share a stable run. Remove "
                "sweep.steps (the batch law) or set sweep.batch_size"
            )
        if sweep.get("precision") is not None and sweep["placement"] == "fixed":
            raise ConfigError(
                "sweep.precision chooses each wave from the runs before it, but sweep.placement: fixed plans "
                "every run up front. Set sweep.placement: adaptive (the default) or remove sweep.precision"
            )
        return cls(
            sizes_per_budget=int(sweep["sizes_per_budget"]), window_span=float(sweep["window_span"]),
            tokens_per_param=float(sweep["tokens_per_param"]), placement=sweep["placement"],
            max_extensions=int(sweep["max_extensions"]), sizes_per_extension=int(sweep["sizes_per_extension"]),
            budget_sizes=tuple((float(e["budget"]), tuple(e["sizes"])) for e in sweep["budget_sizes"]),
            steps=sweep["steps"], batch_size=sweep["batch_size"],
            batch=BatchLaw(**{k: (int if k == "min_samples" else float)(v) for k, v in sweep["batch"].items()}),
            flops_per_token=sweep["flops_per_token"], lr=float(sweep["lr"]), lr_exponent=float(sweep["lr_exponent"]),
            lr_reference_params=float(sweep["lr_reference_params"]), lr_reference_size=sweep["lr_reference_size"],
            lr_calibration=LrCalibration(bool(cal["enabled"]), tuple(float(f) for f in cal["factors"]),
                                         tuple(sorted(float(x) for x in cal["exponent_range"]))),
            warmup_tokens_per_param=float(sweep["warmup_tokens_per_param"]),
            max_warmup_fraction=float(sweep["max_warmup_fraction"]),
            seed=int(sweep["seed"]), seed_replicates=int(sweep["seed_replicates"]),
            reuse=sweep["reuse"], decay_fraction=float(config["training"]["schedule"]["wsd_decay_fraction"]),
            precision=Precision.from_config(sweep.get("precision")),
            max_flops=None if sweep.get("max_flops") is None else float(sweep["max_flops"]),
        )

    @property
    def branches(self) -> bool:
        """``sweep.reuse: branches``: the runs of a size are cooldowns of one shared stable run."""
        return self.reuse == "branches"

    def batch_budget(self, params: int, budget: float, flops_per_token: float | None = None) -> float:
        """The C the batch law is evaluated at for a run of N = ``params`` at ``budget``.

        Without reuse, the run's own budget (one batch per IsoFLOP profile). With branches, a shared
        prefix needs one batch per size, whatever budget it serves: the budget at which the size is
        compute-optimal, C_opt(N) = fpt(N)·tokens_per_param·N, in the FLOPs per token the budgets are
        counted in (6N when not given). DeepSeek's B ∝ C^0.327 then gives B ∝ N^0.65, close to Porian
        et al.'s B ∝ N^(2/3).
        """
        if not self.branches:
            return budget
        fpt = 6.0 * float(params) if flops_per_token is None else float(flops_per_token)
        return fpt * self.tokens_per_param * float(params)

    def snap_params(self, target: float) -> float:
        """With branches, a target N moved to the nearest point of one log grid (the window's spacing):
        budgets then pick the same sizes and can share their stable runs. Without reuse, unchanged."""
        if not self.branches:
            return target
        ratio = self.window_span ** (1.0 / (self.sizes_per_budget - 1))
        return ratio ** round(math.log(target) / math.log(ratio))

    def sizes_at(self, budget: float) -> list | None:
        """Explicit sizes configured for this budget in ``sweep.budget_sizes``, if any."""
        for given, sizes in self.budget_sizes:
            if math.isclose(given, budget, rel_tol=1e-9):
                return list(sizes)
        return None

    def learning_rate(self, params: int, reference_params: float) -> float:
        """The configured lr rule (before any calibration): lr · (N / N_ref)^lr_exponent."""
        return learning_rate(params, reference_params, self.lr, self.lr_exponent)

    def batch_plan(
        self, params: int, budget: float, tokens: float, tokens_per_sample: int, fixed_batch: int | None = None,
        flops_per_token: float | None = None,
    ) -> tuple[int, int, str]:
        """(batch in samples, steps, rule) of one run; precedence: a user DataLoader's batch,
        ``sweep.batch_size``, ``sweep.steps``, then the batch law (``sweep.batch``).

        The batch law is never rounded down to nothing: it keeps at least ``batch.min_samples``
        samples, and the rule text says so when that floor binds (the planner warns about it).
        """
        if fixed_batch or self.batch_size:
            batch, steps = batch_and_steps(tokens, tokens_per_sample, None, fixed_batch or self.batch_size)
            return batch, steps, "fixed batch"
        if self.steps:
            batch, steps = batch_and_steps(tokens, tokens_per_sample, self.steps, None)
            return batch, steps, "fixed steps"
        law = self.batch.tokens_at(params, self.batch_budget(params, budget, flops_per_token)) / tokens_per_sample
        floor = self.batch.min_samples
        batch = max(floor, round(law))
        steps = max(1, round(tokens / tokens_per_sample / batch))
        return batch, steps, "batch law" if law >= floor - 0.5 else f"batch law floored at {floor} samples"

    def warmup_steps(self, params: int, tokens_per_step: int, steps: int, flops_per_token: float) -> int:
        """Warmup of about ``warmup_tokens_per_param``·N tokens (Porian et al.; OLMo), capped to
        ``max_warmup_fraction`` of the run: a long warmup biases small models (Porian: part of why
        Kaplan's exponent came out at 0.73). With branches the cap is taken at the size's C_opt
        (:meth:`batch_budget`), not the run's own steps, so every run of a size shares one warmup."""
        if self.branches:
            steps = max(1, round(self.batch_budget(params, 0.0, flops_per_token) / flops_per_token / tokens_per_step))
        wanted = math.ceil(self.warmup_tokens_per_param * params / tokens_per_step)
        return max(0, min(wanted, math.floor(self.max_warmup_fraction * steps)))
