"""Learning-rate schedule matched to the run: warmup, then a decay that ends exactly at the last step.

Chinchilla showed that a cosine cycle longer than the run biases the fit, so the decay is computed
from the run's own step count and reaches ``final_lr_fraction × peak`` on the last optimizer step.
The schedule is a pure function of the step, so resuming needs no scheduler state.

``constant`` (warmup, then the peak forever) is the stable phase of a WSD run trained on its own: a
stable segment (``sweep.reuse: branches``) trains with it up to a branch point, and a cooldown run
continues from there on its own ``wsd`` schedule. :func:`decay_start` is the one definition of where
a WSD decay begins, used by this schedule and by the planner's branch points, so the two agree.
"""

from __future__ import annotations

import math

KINDS = ("cosine", "linear", "wsd", "constant")
#: shapes of the WSD decay: linear, or 1-sqrt (Hägele et al. 2024: lower final loss at the same length)
DECAY_SHAPES = ("linear", "1-sqrt")


def decay_start(total_steps: int, warmup_steps: int, fraction: float) -> int:
    """The first step of a WSD run's decay: the last ``fraction`` of its steps (at least one), never
    inside the warmup. A cooldown branched at this step from a constant-lr run is that WSD run."""
    warmup = max(0, min(int(warmup_steps), total_steps - 1))
    return max(warmup, total_steps - max(1, round(fraction * total_steps)))


def lr_at(
    step: int,
    *,
    peak_lr: float,
    warmup_steps: int,
    total_steps: int,
    kind: str = "cosine",
    final_lr_fraction: float = 0.1,
    wsd_decay_fraction: float = 0.2,
    wsd_decay_shape: str = "linear",
) -> float:
    """Learning rate of optimizer step ``step`` (0-based; the last step is ``total_steps - 1``).

    * warmup: linear from ``peak/warmup`` to ``peak`` over ``warmup_steps`` steps (capped so that at
      least one decay step remains);
    * ``cosine`` / ``linear``: from ``peak`` right after warmup to ``final_lr_fraction·peak`` at the
      last step;
    * ``wsd`` (warmup-stable-decay): constant ``peak``, then a decay over the last
      ``wsd_decay_fraction`` of the run's steps (:func:`decay_start`), again ending at the last step;
      ``wsd_decay_shape`` ``linear`` or ``1-sqrt`` (1 − sqrt(progress), Hägele et al. 2024);
    * ``constant``: the peak after warmup (a stable segment; no decay).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; use one of {', '.join(KINDS)}")
    if wsd_decay_shape not in DECAY_SHAPES:
        raise ValueError(f"unknown WSD decay shape {wsd_decay_shape!r}; use one of {', '.join(DECAY_SHAPES)}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside the run's {total_steps} steps")
    warmup = max(0, min(int(warmup_steps), total_steps - 1))
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    if kind == "constant":
        return peak_lr
    start = warmup
    if kind == "wsd":
        start = decay_start(total_steps, warmup, wsd_decay_fraction)
        if step < start:
            return peak_lr
    span = total_steps - 1 - start
    progress = (step - start) / span if span > 0 else 1.0
    if kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif kind == "wsd" and wsd_decay_shape == "1-sqrt":
        shape = 1.0 - math.sqrt(progress)
    else:
        shape = 1.0 - progress
    return peak_lr * (final_lr_fraction + (1.0 - final_lr_fraction) * shape)
