"""Synthetic isoFLOP sweeps drawn from a known law, and the public data folder, for the fitting tests."""

from __future__ import annotations

import functools
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


def fit_json(*args, **kwargs) -> dict:
    """``fit_table(...)`` as ``fit.json`` holds it: the serialised contract these tests check."""
    from flops_fit.fitting import fit_table

    return fit_table(*args, **kwargs).to_dict()


@functools.cache
def _fitted_record() -> dict:
    return fit_json(synthetic_sweep(seed=0, budgets=(1e18, 1e19, 1e20)), bootstrap=0)


def fit_record(**parts: dict):
    """A real fit (:class:`ScalingFit`) with some of its fit.json sections replaced (a dict section is
    merged into the fitted one): tests of a reader set only what the reader looks at."""
    from flops_fit.fitting import ScalingFit

    record = dict(_fitted_record())
    for name, value in parts.items():
        record[name] = {**record[name], **value} if isinstance(value, dict) and isinstance(record[name], dict) else value
    return ScalingFit.from_dict(record)
