"""Learning-rate schedule matched to the run: warmup, then a decay that ends exactly at the last step.

Chinchilla showed that a cosine cycle longer than the run biases the fit, so the decay is computed
from the run's own step count and reaches ``final_lr_fraction × peak`` on the last optimizer step.
The schedule is a pure function of the step, so resuming needs no scheduler state.
"""

from __future__ import annotations

import math

KINDS = ("cosine", "linear", "wsd")


def lr_at(
    step: int,
    *,
    peak_lr: float,
    warmup_steps: int,
    total_steps: int,
    kind: str = "cosine",
    final_lr_fraction: float = 0.1,
    wsd_decay_fraction: float = 0.2,
) -> float:
    """Learning rate of optimizer step ``step`` (0-based; the last step is ``total_steps - 1``).

    * warmup: linear from ``peak/warmup`` to ``peak`` over ``warmup_steps`` steps (capped so that at
      least one decay step remains);
    * ``cosine`` / ``linear``: from ``peak`` right after warmup to ``final_lr_fraction·peak`` at the
      last step;
    * ``wsd`` (warmup-stable-decay): constant ``peak``, then a linear decay over the last
      ``wsd_decay_fraction`` of the run's steps (never into the warmup), again ending at the last step.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; use one of {', '.join(KINDS)}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside the run's {total_steps} steps")
    warmup = max(0, min(int(warmup_steps), total_steps - 1))
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    decay_start = warmup
    if kind == "wsd":
        decay_steps = max(1, round(wsd_decay_fraction * total_steps))
        decay_start = max(warmup, total_steps - decay_steps)
        if step < decay_start:
            return peak_lr
    span = total_steps - 1 - decay_start
    progress = (step - decay_start) / span if span > 0 else 1.0
    if kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    return peak_lr * (final_lr_fraction + (1.0 - final_lr_fraction) * shape)
