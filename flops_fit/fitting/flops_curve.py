"""FLOPs per token as a function of N: the cost of each size that budgets are spent in.

Under measured FLOPs a size's cost per token is not 6N, nor any constant times N: the shipped GPT
costs 1.41x 6N at d_model 18 and 1.05x at 187 (attention), a small ViT on 8x8 digits 17x to 17.8x. A compute-optimal N* spends C = fpt(N*)·D*, so the frontier and each D* must use the
cost of the size they recommend; one constant k would bias N*, D* and the exponents.

The curve interpolates ln fpt linearly in ln N between the sizes of the runs table and extrapolates
with the end slopes (with a single size, fpt ∝ N: a constant k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: a curve whose FLOPs per parameter-token vary less than this (relative) is the constant k it is
CONSTANT_RTOL = 1e-9


@dataclass(frozen=True)
class FlopsCurve:
    """ln(FLOPs per token) at the knots ln N (ascending, distinct)."""

    ln_n: np.ndarray
    ln_fpt: np.ndarray

    @classmethod
    def constant(cls, k: float) -> FlopsCurve:
        """C = k·N·D at every N (6N: k = 6)."""
        return cls(np.zeros(1), np.array([np.log(k)]))

    @classmethod
    def from_sizes(cls, params: np.ndarray, flops_per_token: np.ndarray) -> FlopsCurve:
        """From each size's N and FLOPs per token (a size listed twice is averaged in log)."""
        frame = pd.DataFrame({"ln_n": np.log(np.asarray(params, float)),
                              "ln_fpt": np.log(np.asarray(flops_per_token, float))})
        knots = frame.groupby("ln_n", sort=True)["ln_fpt"].mean()
        return cls(knots.index.to_numpy(float), knots.to_numpy(float))

    @classmethod
    def from_runs(cls, table: pd.DataFrame) -> FlopsCurve | None:
        """From a runs table's ``params`` and ``flops_per_token``; None for a table written before
        ``flops_per_token_6n`` (the fit then keeps one k, as it did for those tables)."""
        if not len(table) or "flops_per_token_6n" not in table.columns:
            return None
        return cls.from_sizes(table["params"].to_numpy(float), table["flops_per_token"].to_numpy(float))

    @property
    def constant_k(self) -> float | None:
        """k when fpt = k·N at every knot (then everywhere), else None."""
        k = self.ln_fpt - self.ln_n
        return float(np.exp(k[0])) if np.ptp(k) <= CONSTANT_RTOL else None

    def ln_per_token(self, ln_n: np.ndarray) -> np.ndarray:
        """ln FLOPs per token at ``ln_n`` (any shape)."""
        ln_n = np.asarray(ln_n, float)
        x, y = self.ln_n, self.ln_fpt
        if x.size == 1:
            return y[0] + (ln_n - x[0])
        lo, hi = (y[1] - y[0]) / (x[1] - x[0]), (y[-1] - y[-2]) / (x[-1] - x[-2])
        inner = np.interp(ln_n, x, y)
        return np.where(ln_n < x[0], y[0] + lo * (ln_n - x[0]),
                        np.where(ln_n > x[-1], y[-1] + hi * (ln_n - x[-1]), inner))

    def ln_per_param(self, ln_n: np.ndarray) -> np.ndarray:
        """ln k(N), k = FLOPs per parameter-token (C = k·N·D)."""
        return self.ln_per_token(ln_n) - np.asarray(ln_n, float)

    def to_dict(self) -> dict:
        """``fit.json["parametric"]["flops_per_token"]``: the knots the frontier was solved with."""
        return {"N": np.exp(self.ln_n).tolist(), "flops_per_token": np.exp(self.ln_fpt).tolist()}
