"""Stop a run whose loss has diverged, so that it is excluded from the fit instead of silently fitted.

Rule: a non-finite train loss (NaN/inf) stops the run at once. After warmup, a loss above
``spike_factor × (lowest loss so far)`` for ``patience_steps`` consecutive steps stops it too; a
single noisy batch does not. The spike rule needs a positive loss scale, so it is skipped while the
lowest loss is ≤ 0 (losses that can be negative).
"""

from __future__ import annotations

import math


class DivergenceMonitor:
    def __init__(self, spike_factor: float, patience_steps: int, warmup_steps: int) -> None:
        self.spike_factor = float(spike_factor)
        self.patience_steps = max(1, int(patience_steps))
        self.warmup_steps = int(warmup_steps)
        self.lowest = math.inf
        self.above = 0  #: consecutive post-warmup steps above the spike threshold

    def update(self, step: int, loss: float) -> str | None:
        """Feed the train loss of 1-based ``step``; returns the reason when the run has diverged."""
        if not math.isfinite(loss):
            return f"non-finite train loss ({loss}) at step {step}"
        self.lowest = min(self.lowest, loss)
        threshold = self.spike_factor * self.lowest
        if step > self.warmup_steps and self.lowest > 0 and loss > threshold:
            self.above += 1
            if self.above >= self.patience_steps:
                return (
                    f"train loss {loss:.4g} at step {step} stayed above {self.spike_factor:g} x the lowest "
                    f"loss {self.lowest:.4g} for {self.above} steps"
                )
        else:
            self.above = 0
        return None

    def state_dict(self) -> dict[str, float]:
        return {"lowest": self.lowest, "above": self.above}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.lowest, self.above = float(state["lowest"]), int(state["above"])
