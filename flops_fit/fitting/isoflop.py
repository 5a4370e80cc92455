"""Approach 2: isoFLOP profiles.

Per budget group, loss is fitted as a polynomial in ln N: a parabola, or a cubic where the profiles
are skewed (a parabola through a skewed, widely sampled profile puts its vertex off the minimum, or
outside the sizes); one degree for the whole sweep (:func:`flops_fit.fitting.approach2.choose_sweep_degree`).
The profile's minimum is accepted only when
it is **interior**: a local minimum strictly inside the sampled sizes, and the lowest observed loss is
not at the smallest or largest size (else the sweep did not bracket the optimum and the vertex is an
extrapolation). Each optimum's standard error in ln N* (delta method on the polynomial's coefficient
covariance) weights the log–log fits ln N* = ln k_N + a ln C and ln D* = ln k_D + b ln C.

Everything is vectorised over bootstrap resamples: a weight matrix W (R, n) of resampling counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: floor on the standard error of ln N* (a parabola through near-perfect points would otherwise
#: claim near-zero error and take all the weight of the log–log fit)
SIGMA_FLOOR = 0.01
#: the refusal reasons that say on which side the sweep must grow (read by the recommendation advice)
EDGE_SMALLEST = "lowest loss at the smallest size"
EDGE_LARGEST = "lowest loss at the largest size"
OUTSIDE = "fitted minimum outside the sampled sizes"
#: under "auto", the cubic is tried only when every budget has this many distinct sizes: 5 to be
#: fitted with a residual, plus one so that its vertex is not fixed by the sizes alone
AUTO_CUBIC_MIN_SIZES = 6
def vertex(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The local minimum u* of each polynomial (rows of ``coef``, increasing order, degree 2 or 3)
    and the curvature p''(u*) there; u* is NaN where there is none (concave parabola, monotone cubic)."""
    c = np.zeros((coef.shape[0], 4))
    c[:, :coef.shape[1]] = coef
    c1, c2, c3 = c[:, 1], c[:, 2], c[:, 3]
    disc = 4 * c2 ** 2 - 12 * c3 * c1
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(disc)
        ustar = -2 * c1 / (2 * c2 + s)  # the root of p'(u) with p''(u) = s > 0, stable as c3 -> 0
    has_min = np.isfinite(coef).all(axis=1) & (disc > 0) & (2 * c2 + s > 0)
    return np.where(has_min, ustar, np.nan), s


def poly_at(coef: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each row's polynomial at its own u (NaN u gives NaN)."""
    return np.einsum("ri,ri->r", coef, u[:, None] ** np.arange(coef.shape[1]))


@dataclass
class ProfileFit:
    """Batched result for one budget: arrays over resamples (R,)."""

    lnN: np.ndarray
    loss: np.ndarray
    interior: np.ndarray
    reason: np.ndarray  # object array of str ('' when interior)
    coef: np.ndarray    # (R, p) coefficients in u = (ln N - center) / scale, increasing order
    sigma: np.ndarray   # standard error of ln N* (NaN in bootstrap resamples)


def fit_profile(lnN: np.ndarray, loss: np.ndarray, W: np.ndarray, degree: int = 2,
                with_sigma: bool = False, noise_sd: float | None = None) -> ProfileFit:
    """Fit one budget's profile for every row of W (counts per point) at once.

    ``noise_sd`` (run-to-run loss noise, e.g. from seed replicates) floors the residual standard
    deviation of the vertex error: a profile that happens to pass through its few points almost
    exactly must not claim more precision than repeated runs show.
    """
    center = 0.5 * (lnN.min() + lnN.max())
    scale = max(0.5 * (lnN.max() - lnN.min()), 1e-12)
    u = (lnN - center) / scale
    p = degree + 1
    V = np.vander(u, p, increasing=True)  # (n, p)
    G = np.einsum("rn,ni,nj->rij", W, V, V)
    h = np.einsum("rn,ni,n->ri", W, V, loss)
    present = W > 0
    _, size_of = np.unique(u, return_inverse=True)
    onehot = np.eye(size_of.max() + 1)[size_of]  # (n, distinct sizes)
    n_sizes = ((present @ onehot) > 0).sum(axis=1)
    usable = n_sizes >= p + 1
    coef = np.full((W.shape[0], p), np.nan)
    coef[usable] = np.linalg.solve(G[usable], h[usable][..., None])[..., 0]
    ustar, s = vertex(coef)
    has_min = usable & np.isfinite(ustar)
    big = np.where(present, u[None, :], -np.inf).max(axis=1)
    small = np.where(present, u[None, :], np.inf).min(axis=1)
    inside = has_min & (ustar > small) & (ustar < big)
    u_best = u[np.argmin(np.where(present, loss[None, :], np.inf), axis=1)]
    bracketed = (u_best > small) & (u_best < big)
    interior = inside & bracketed
    reason = np.full(W.shape[0], "", dtype=object)
    reason[u_best <= small] = f"{EDGE_SMALLEST}: the sweep does not bracket the optimum"
    reason[u_best >= big] = f"{EDGE_LARGEST}: the sweep does not bracket the optimum"
    reason[bracketed & has_min & ~inside] = OUTSIDE
    reason[usable & ~has_min] = "profile has no minimum (not convex)"
    reason[~usable] = f"fewer than {p + 1} distinct sizes for a degree-{degree} fit"
    loss_star = np.where(has_min, poly_at(coef, ustar), np.nan)
    sigma = np.full(W.shape[0], np.nan)
    if with_sigma:
        sigma = _vertex_sigma(V, loss, W, G, coef, ustar, s, p, noise_sd or 0.0) * scale
    return ProfileFit(lnN=center + scale * ustar, loss=loss_star, interior=interior, reason=reason,
                      coef=coef, sigma=np.maximum(sigma, SIGMA_FLOOR))


def _vertex_sigma(V, loss, W, G, coef, ustar, pdd, p, noise_sd: float) -> np.ndarray:
    """Delta-method standard error of u*: du*/dc_k = -k u*^(k-1) / p''(u*); residual sd >= noise_sd."""
    out = np.full(W.shape[0], np.nan)
    for r in np.flatnonzero(np.isfinite(ustar)):
        dof = W[r].sum() - p
        if dof <= 0:
            continue
        resid = loss - V @ coef[r]
        s2 = max(float(W[r] @ resid ** 2) / dof, noise_sd ** 2)
        cov = s2 * np.linalg.inv(G[r])
        k = np.arange(p)
        grad = np.where(k > 0, -k * ustar[r] ** np.maximum(k - 1, 0) / pdd[r], 0.0)
        out[r] = np.sqrt(max(float(grad @ cov @ grad), 0.0))
    return out


def power_law(lnC: np.ndarray, lnY: np.ndarray, sigma: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted (1/sigma^2) least-squares line ln Y = intercept + slope ln C per row.

    lnC (G,), lnY (R, G), sigma (G,), mask (R, G) of budgets to use. Rows with fewer than two
    budgets give NaN.
    """
    w = np.where(mask, 1.0 / sigma[None, :] ** 2, 0.0)
    y = np.where(mask, lnY, 0.0)
    S0, Sx, Sxx = w.sum(1), w @ lnC, w @ lnC ** 2
    Sy, Sxy = (w * y).sum(1), (w * y) @ lnC
    det = S0 * Sxx - Sx ** 2
    ok = (mask.sum(1) >= 2) & (det > 1e-12 * np.maximum(S0 * Sxx, 1e-300))
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(ok, (S0 * Sxy - Sx * Sy) / det, np.nan)
        intercept = np.where(ok, (Sy - slope * Sx) / S0, np.nan)
    return slope, intercept


@dataclass
class ProfileDraws:
    """A profile's optimum under run noise, one value per draw (R,): the parametric bootstrap."""

    lnN: np.ndarray
    loss: np.ndarray
    #: the draw's profile has a minimum inside the sizes trained; else its optimum is censored at the
    #: end of the sizes where the drawn curve is lowest (the minimum lies there or beyond)
    valid: np.ndarray


def residual_ss(lnN: np.ndarray, loss: np.ndarray, degree: int) -> tuple[float, int]:
    """(residual sum of squares, degrees of freedom) of one profile's polynomial fit."""
    V = np.vander(lnN - lnN.mean(), degree + 1, increasing=True)
    coef = np.linalg.lstsq(V, loss, rcond=None)[0]
    return float(np.sum((loss - V @ coef) ** 2)), int(loss.size - (degree + 1))


def profile_draws(lnN: np.ndarray, loss: np.ndarray, degree: int, noise_sd: np.ndarray,
                  rng: np.random.Generator) -> ProfileDraws:
    """The optimum of one budget's profile redrawn from its fitted curve plus run noise.

    ``noise_sd`` (R,) is each draw's run-to-run noise. Why not resample runs: a resample of 6 runs
    often holds fewer distinct sizes than a profile needs, so the budget drops out of that resample
    and the interval mixes fits with and without it (on the default design only 9 % of resamples
    kept all 4 budgets). Redrawing every run's loss around the fitted curve keeps every size and
    every budget; a draw whose minimum leaves the sizes is censored at their end. The curve's misfit is not redrawn: it is a bias shared by neighbouring budgets,
    which the rolling backtest measures as the law's error.
    """
    center = 0.5 * (lnN.min() + lnN.max())
    scale = max(0.5 * (lnN.max() - lnN.min()), 1e-12)
    u = (lnN - center) / scale
    V = np.vander(u, degree + 1, increasing=True)
    pinv = np.linalg.pinv(V)
    fitted = V @ (pinv @ loss)
    Y = fitted[None, :] + noise_sd[:, None] * rng.standard_normal((noise_sd.size, loss.size))
    coefs = Y @ pinv.T
    ustar, _ = vertex(coefs)
    valid = np.isfinite(ustar) & (ustar > u.min()) & (ustar < u.max())
    ends = np.array([u.min(), u.max()])
    lower_end = ends[np.argmin(np.stack([poly_at(coefs, np.full(len(coefs), e)) for e in ends], axis=1), axis=1)]
    ustar = np.where(valid, ustar, lower_end)
    return ProfileDraws(lnN=center + scale * ustar, loss=poly_at(coefs, ustar), valid=valid)
