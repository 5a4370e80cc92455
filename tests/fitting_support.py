"""Synthetic isoFLOP sweeps drawn from a known law, and the public data folder, for the fitting tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

#: ../shared/notes/data relative to the repository root (never copied into the repository)
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "notes" / "data"

#: a Chinchilla-like truth (Epoch refit rounded): a = beta / (alpha + beta) = 0.5139
TRUTH = {"E": 1.82, "A": 478.0, "B": 2143.0, "alpha": 0.347, "beta": 0.367}
TRUE_A = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"public test data {path} absent")
    return path


def law(N: np.ndarray, D: np.ndarray, t: dict = TRUTH) -> np.ndarray:
    return t["E"] + t["A"] / N ** t["alpha"] + t["B"] / D ** t["beta"]


def true_optimum(C: float, t: dict = TRUTH, k: float = 6.0) -> float:
    G = (t["alpha"] * t["A"] / (t["beta"] * t["B"])) ** (1 / (t["alpha"] + t["beta"]))
    return G * (C / k) ** (t["beta"] / (t["alpha"] + t["beta"]))


BUDGETS = (1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21)


def synthetic_sweep(seed: int = 0, noise: float = 0.01, budgets: tuple[float, ...] = BUDGETS,
                    sizes: int = 9, span: float = 8.0, k: float = 6.0) -> pd.DataFrame:
    """isoFLOP sweep centred on the true optimum (sizes spanning N*/span .. N*·span) with log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        for N in true_optimum(C, k=k) * np.geomspace(1 / span, span, sizes):
            D = C / (k * N)
            rows.append({"N": N, "D": D, "C": C, "budget": C, "loss": law(N, D) * np.exp(rng.normal(0, noise))})
    return pd.DataFrame(rows)
