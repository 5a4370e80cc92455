"""Sweep policy: which sizes to train at each budget, and with which batch, steps and learning rate.

This module holds the *choices* (in the spirit of Marin's ``ScalingRecipe`` and OLMo-core's run
configurators); :mod:`flops_fit.planning` holds the arithmetic that turns them into exact runs. Every
choice reads its knobs from the ``sweep:`` config section, documented in the schema.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def expected_optimal_params(budget: float, tokens_per_param: float, flops_per_param_token: float = 6.0) -> float:
    """N that spends ``budget`` at ``tokens_per_param`` tokens per parameter: C = k·N·(r·N)."""
    return math.sqrt(budget / (flops_per_param_token * tokens_per_param))


def select_sizes(
    budget: float, params_by_size: dict[float, int], count: int, tokens_per_param: float
) -> tuple[list[float], list[str]]:
    """Choose ``count`` consecutive sizes (ordered by N) centred, in log N, on the expected optimum.

    Centring matters: an off-centre window biases the parabola's minimum (Open-Athena), and a window
    that does not bracket the optimum yields an edge minimum the fit has to refuse. Returns the sizes
    and warnings when the grid cannot centre the window.
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
    target = math.log(expected_optimal_params(budget, tokens_per_param))
    logn = [math.log(params_by_size[s]) for s in ordered]
    starts = range(len(ordered) - count + 1)
    best = min(starts, key=lambda i: abs((logn[i] + logn[i + count - 1]) / 2 - target))
    if target < logn[best] or target > logn[best + count - 1]:
        warnings.append(
            f"budget {budget:.3g}: the expected optimum N≈{math.exp(target):.3g} lies outside model.sizes "
            f"(N from {params_by_size[ordered[0]]:.3g} to {params_by_size[ordered[-1]]:.3g}); "
            f"add {'smaller' if target < logn[0] else 'larger'} sizes so the minimum can be bracketed"
        )
    return ordered[best : best + count], warnings


def learning_rate(params: int, reference_params: int, base_lr: float, exponent: float) -> float:
    """Peak lr = base_lr · (N / N_ref)^exponent (exponent 0: constant; −1/3: Porian et al.'s tuned law)."""
    return base_lr * (params / reference_params) ** exponent


def batch_rule(sweep: dict, fixed_batch: int | None) -> tuple[int | None, int | None]:
    """(steps target, batch size): a user DataLoader's batch wins, then ``sweep.batch_size``, else fixed steps."""
    batch_size = fixed_batch or sweep["batch_size"]
    return (None if batch_size else sweep["steps"]), batch_size


def batch_and_steps(
    tokens: float, tokens_per_sample: int, steps: int | None, batch_size: int | None
) -> tuple[int, int]:
    """Return (batch_size in samples, steps) so that steps·batch·tokens_per_sample ≈ tokens.

    With a fixed step count the batch grows with D (the measured-best recipe on CPU: small models with
    many tokens get big, efficient batches); the step count is then re-derived from the rounded batch,
    so the token count misses the budget by at most half a batch (≤ 1/(2·steps) relatively).
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


def warmup_steps(
    params: int, tokens_per_step: int, steps: int, tokens_per_param: float, max_fraction: float
) -> int:
    """Warmup of about N tokens (Porian et al.; OLMo), capped to a fraction of the run.

    A long warmup biases small models (Porian: part of why Kaplan's exponent came out at 0.73).
    """
    wanted = math.ceil(tokens_per_param * params / tokens_per_step)
    return max(0, min(wanted, math.floor(max_fraction * steps)))


def budget_sizes(overrides: Sequence[dict], budget: float) -> list[float] | None:
    """Explicit sizes configured for this budget in ``sweep.budget_sizes``, if any."""
    for entry in overrides:
        if math.isclose(float(entry["budget"]), budget, rel_tol=1e-9):
            return list(entry["sizes"])
    return None
