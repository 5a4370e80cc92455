"""Stop a run whose loss has diverged, so that it is excluded from the fit instead of silently fitted.

Rule: a non-finite train loss (NaN/inf) stops the run at once. After warmup, a **smoothed** train
loss above ``spike_factor × (its lowest value so far)`` for ``patience_steps`` consecutive steps
stops it too. The spike rule needs a positive loss scale, so it is skipped while the lowest smoothed
loss is ≤ 0 (losses that can be negative).

Why smoothed: one batch's loss is noisy, and the noise grows as the batch shrinks. Compared with the
lowest *single* batch so far, a small batch (a user DataLoader of 7 samples) trips any fixed factor:
the lowest of thousands of noisy batches is an outlier far below the run's level, so ordinary batches
sit "above 3 x the lowest loss" for many steps in a row while the run falls steadily (issue 25: a run
falling from 2.37 to 0.69 was stopped twice at "0.9329 above 3 x the lowest loss 0.2"). Here both
sides of the comparison are the smoothed loss:

* the running mean of the losses for the first :data:`WINDOW` steps, then an exponential moving
  average with α = 2 / (WINDOW + 1) (a 50-step window: α ≈ 0.039). Its noise is about
  √(α / (2 − α)) ≈ 0.14 of one batch's, so a batch loss whose spread equals its mean (far noisier
  than batch-7 language-model losses) moves the smoothed loss by ~14 % (σ); its lowest value is then
  about 3 σ (~40 %) under the run's level, and exceeding 3 x that lowest takes a > 5 σ excursion of
  the average, for ``patience_steps`` steps in a row.
* its lowest value counts only from step :data:`MIN_STEPS` on (a mean over ≥ 10 batches), so one
  lucky early batch cannot set the scale.

A real divergence still stops the run: a NaN at once, and a loss that jumps k-fold (k > 3) lifts the
smoothed loss over 3 x within ``WINDOW/2 · ln((k − 1) / (k − 3))`` steps (6 steps for k = 10), then
``patience_steps`` more.
"""

from __future__ import annotations

import math

#: the smoothing window in steps: running mean up to it, then an EMA with alpha = 2 / (WINDOW + 1)
WINDOW = 50
#: the lowest smoothed loss counts (and the spike rule applies) from this step on
MIN_STEPS = 10


class DivergenceMonitor:
    def __init__(self, spike_factor: float, patience_steps: int, warmup_steps: int) -> None:
        self.spike_factor = float(spike_factor)
        self.patience_steps = max(1, int(patience_steps))
        self.warmup_steps = int(warmup_steps)
        self.lowest = math.inf  #: lowest smoothed loss from step MIN_STEPS on
        self.smoothed = math.nan  #: the smoothed train loss (running mean, then EMA)
        self.count = 0  #: losses fed so far
        self.above = 0  #: consecutive post-warmup steps with the smoothed loss above the threshold

    def update(self, step: int, loss: float) -> str | None:
        """Feed the train loss of 1-based ``step``; returns the reason when the run has diverged."""
        if not math.isfinite(loss):
            return f"non-finite train loss ({loss}) at step {step}"
        self.count += 1
        alpha = max(1.0 / self.count, 2.0 / (WINDOW + 1))
        self.smoothed = loss if self.count == 1 else self.smoothed + alpha * (loss - self.smoothed)
        if self.count < MIN_STEPS:
            return None
        self.lowest = min(self.lowest, self.smoothed)
        threshold = self.spike_factor * self.lowest
        if step > self.warmup_steps and self.lowest > 0 and self.smoothed > threshold:
            self.above += 1
            if self.above >= self.patience_steps:
                return (
                    f"smoothed train loss {self.smoothed:.4g} at step {step} (this step's {loss:.4g}) stayed "
                    f"above {self.spike_factor:g} x its lowest {self.lowest:.4g} for {self.above} steps"
                )
        else:
            self.above = 0
        return None

    def state_dict(self) -> dict[str, float]:
        return {"lowest": self.lowest, "above": self.above, "smoothed": self.smoothed, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.lowest, self.above = float(state["lowest"]), int(state["above"])
        # a checkpoint written before the loss was smoothed: start the average afresh
        self.smoothed, self.count = float(state.get("smoothed", math.nan)), int(state.get("count", 0))
        if "smoothed" not in state:
            self.lowest, self.above = math.inf, 0
