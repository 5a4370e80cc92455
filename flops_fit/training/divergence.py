"""Stop a run whose loss has diverged, so that it is excluded from the fit instead of silently fitted.

Rule: a non-finite train loss (NaN/inf) stops the run at once. After warmup, a train loss above
``spike_factor ×`` the lowest **smoothed** train loss so far for ``patience_steps`` consecutive steps
stops it too. The spike rule needs a positive loss scale, so it is skipped while the lowest smoothed
loss is ≤ 0 (losses that can be negative).

Why smoothed: one batch's loss is noisy, and the noise grows as the batch shrinks. Compared with the
lowest *single* batch so far, a small batch (a user DataLoader of 7 samples) trips any fixed factor:
the lowest of thousands of noisy batches is an outlier far below the run's level, so ordinary batches
sit "above 3 x the lowest loss" for many steps in a row while the run falls steadily (issue 25: a run
falling from 2.37 to 0.69 was stopped twice at "0.9329 above 3 x the lowest loss 0.2"). Here the
reference is the **lowest running median of the last WINDOW (50) batch losses**, tracked from step 1:

* a median ignores batch noise, so the reference is the run's level, not a lucky batch; a batch of a
  run that falls steadily is then 3 x above it for ``patience_steps`` steps in a row only if its noise
  is far larger than its mean;
* each step's own loss is compared with it, so a blow-up is caught within ``patience_steps`` steps
  and a spike shorter than that, which the run recovers from, is not (an exponential average of the
  loss was tried and rejected: one spike of five orders of magnitude at lr 5 took ~290 steps to fade
  from it and stopped a run that recovered).
"""

from __future__ import annotations

import math
import statistics
from collections import deque

#: the smoothing window in steps: the running median of the last WINDOW batch losses
WINDOW = 50


class DivergenceMonitor:
    def __init__(self, spike_factor: float, patience_steps: int, warmup_steps: int) -> None:
        self.spike_factor = float(spike_factor)
        self.patience_steps = max(1, int(patience_steps))
        self.warmup_steps = int(warmup_steps)
        self.lowest = math.inf  #: lowest running median so far
        self.window: deque[float] = deque(maxlen=WINDOW)  #: the last WINDOW batch losses
        self.above = 0  #: consecutive post-warmup steps with the median above the threshold

    def update(self, step: int, loss: float) -> str | None:
        """Feed the train loss of 1-based ``step``; returns the reason when the run has diverged."""
        if not math.isfinite(loss):
            return f"non-finite train loss ({loss}) at step {step}"
        self.window.append(float(loss))
        self.lowest = min(self.lowest, statistics.median(self.window))
        threshold = self.spike_factor * self.lowest
        if step > self.warmup_steps and self.lowest > 0 and loss > threshold:
            self.above += 1
            if self.above >= self.patience_steps:
                return (
                    f"train loss {loss:.4g} at step {step} stayed above {self.spike_factor:g} x the lowest smoothed "
                    f"train loss {self.lowest:.4g} (running median of {WINDOW} steps) for {self.above} steps"
                )
        else:
            self.above = 0
        return None

    def state_dict(self) -> dict:
        return {"lowest": self.lowest, "above": self.above, "window": list(self.window)}

    def load_state_dict(self, state: dict) -> None:
        if "window" not in state:  # a checkpoint written before the loss was smoothed: start afresh
            return
        self.lowest, self.above = float(state["lowest"]), int(state["above"])
        self.window = deque((float(x) for x in state["window"]), maxlen=WINDOW)
