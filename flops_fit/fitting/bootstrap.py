"""Bootstrap helpers: resampling runs as weight matrices, and percentile intervals.

Runs are resampled **within their isoFLOP budget group** (rows in no group form one stratum): the
design fixed how many runs each budget has, and resampling across groups would leave some budgets
with too few sizes for a profile. A resample is a row of counts, so every fit takes it as weights
and all resamples are fitted in one vectorised pass.
"""

from __future__ import annotations

import numpy as np

#: central interval reported for every quantity
CI_LEVEL = 0.95


def resample_weights(strata: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(R, n) resampling counts: each stratum's rows drawn with replacement, its size kept."""
    rng = np.random.default_rng(seed)
    W = np.zeros((n_resamples, strata.size))
    for label in np.unique(strata):
        idx = np.flatnonzero(strata == label)
        W[:, idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=n_resamples)
    return W


def percentile_ci(samples: np.ndarray, level: float = CI_LEVEL, axis: int = 0) -> np.ndarray | None:
    """Percentile interval [lo, hi] over resamples, ignoring failed (NaN) resamples; None if none."""
    samples = np.asarray(samples, float)
    if samples.shape[axis] == 0 or not np.isfinite(samples).any():
        return None
    tail = 50 * (1 - level)
    return np.nanpercentile(samples, [tail, 100 - tail], axis=axis)


def ci_pair(samples: np.ndarray | None) -> list[float] | None:
    """The percentile interval of one quantity as [lo, hi] floats (fit.json's form), or None.

    An end that is not finite (resamples whose frontier runs off to infinity) makes no interval:
    fit.json would store it as null, and every reader (plots, lines, verify) expects both ends or none.
    """
    if samples is None:
        return None
    ci = percentile_ci(samples)
    if ci is None or not np.isfinite(ci).all():
        return None
    return [float(ci[0]), float(ci[1])]
