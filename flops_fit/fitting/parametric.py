"""Approach 3: the parametric law L(N, D) = E + A/N^alpha + B/D^beta.

Objective (Hoffmann et al. 2022, as replicated by Epoch AI 2024): the **sum** (not the mean: a mean
scales the objective down so far that L-BFGS stops early) of Huber_delta, delta = 1e-3, of the
residual in log space, written in log-sum-exp form so that it stays finite for any parameter:

    r_i = LSE(e, a - alpha ln N_i, b - beta ln D_i) - ln L_i,   E = e^e, A = e^a, B = e^b.

How the minimum is found (measured in ``bench/fit_speed.py``; 4,500 independent L-BFGS-B starts
are slow and still miss the minimum on some data):

1. **Variable projection** on a grid of (alpha, beta): for fixed exponents the law is linear in
   (E, A, B), so a relative-error nonnegative least-squares solve (every active set of the three
   coefficients, vectorised over the whole grid) gives the best (E, A, B) for each grid cell.
2. The best few cells start a **batched Levenberg–Marquardt on the Huber majoriser** (iteratively
   reweighted Gauss–Newton: weight min(1, delta/|r|)), which decreases the exact objective at every
   accepted step and runs all starts (or all bootstrap resamples) at once in numpy.
3. The winner is polished by L-BFGS-B on the exact objective with its analytic gradient; its
   convergence message, the objective and the gradient norm are reported.

Bootstrap resamples reuse step 2 with per-row counts as weights, started from the full-data fit.

**Loss floor.** When the loss has a known lower bound (the entropy rate of a synthetic source, say),
the search box's lower bound on ln E is ln(floor) instead of ln 1e-6: every step above projects onto
the box, so the point fit and every bootstrap resample have E >= floor, and so has every loss the law
predicts. Small budgets see little of the floor, and without it E absorbs curvature of the other two
terms (the default sweep's E = 1.22 lay below its source's entropy rate, 1.385).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from .flops_curve import FlopsCurve

#: default Huber threshold on the log-loss residual (Hoffmann et al. 2022, Appendix D.2; some
#: published fits use 1e-4, e.g. Gemstones' delta-4 tables)
HUBER_DELTA = 1e-3
#: parameter order of theta
PARAM_NAMES = ("e", "a", "b", "alpha", "beta")
#: box bounds on theta; a fitted value within BOUND_TOL of a bound is reported as "at a bound"
EXPONENT_BOUNDS = (0.0, 3.0)
LOG_COEF_BOUNDS = (-30.0, 80.0)
LOG_E_FLOOR = np.log(1e-6)
BOUND_TOL = 1e-6
#: observed losses more than this fraction below a given loss floor mean the floor is wrong; less is
#: within the sampling noise of a finite eval set (whose loss can dip under the true expected loss)
FLOOR_SLACK = 0.01
#: :func:`frontier_per_size` searches ln N* this far (e-folds) either side of the constant-k optimum ...
FRONTIER_BRACKET = 5.0
#: ... by golden section, this many steps (the bracket shrinks to 1e-12 of its width)
GOLDEN_STEPS = 60


@dataclass(frozen=True)
class Data:
    """Log-space observations with optional per-row weights (bootstrap counts)."""

    x: np.ndarray  # ln N
    y: np.ndarray  # ln D
    l: np.ndarray  # ln loss
    #: the objective's Huber threshold travels with the data, so every optimiser step uses the same one
    huber_delta: float = HUBER_DELTA
    #: known lower bound on the loss (None: none); E is searched at or above it, like the box below
    loss_floor: float | None = None

    @classmethod
    def from_arrays(cls, N: np.ndarray, D: np.ndarray, loss: np.ndarray, huber_delta: float = HUBER_DELTA,
                    loss_floor: float | None = None) -> "Data":
        if not huber_delta > 0:
            raise ValueError(f"huber_delta must be positive, not {huber_delta}")
        if loss_floor is not None and not (np.isfinite(loss_floor) and loss_floor > 0):
            raise ValueError(f"loss_floor must be a positive number (a lower bound on the loss), not {loss_floor}")
        return cls(np.log(np.asarray(N, float)), np.log(np.asarray(D, float)), np.log(np.asarray(loss, float)),
                   float(huber_delta), None if loss_floor is None else float(loss_floor))

    def bounds(self) -> np.ndarray:
        """(5, 2) box: E at or above the loss floor (if any) and at most the largest observed loss.

        A floor above every observed loss (a wrong floor: :func:`floor_warnings` says so) pins E to it
        rather than leaving an empty box.
        """
        e_lo = LOG_E_FLOOR if self.loss_floor is None else float(np.log(self.loss_floor))
        return np.array([
            [e_lo, max(e_lo, float(self.l.max()))],
            LOG_COEF_BOUNDS,
            LOG_COEF_BOUNDS,
            EXPONENT_BOUNDS,
            EXPONENT_BOUNDS,
        ])


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _terms(theta: np.ndarray, data: Data) -> tuple[np.ndarray, np.ndarray]:
    """Residuals r (K, n) and softmax shares p (3, K, n) for a batch of parameter vectors (K, 5)."""
    e, a, b, al, be = (theta[:, j:j + 1] for j in range(5))
    t = np.stack(np.broadcast_arrays(e, a - al * data.x, b - be * data.y))
    m = t.max(axis=0)
    ex = np.exp(t - m)
    s = ex.sum(axis=0)
    return m + np.log(s) - data.l, ex / s


def objective(theta: np.ndarray, data: Data, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted sum of Huber residuals for each row of theta (K, 5) -> (K,)."""
    r, _ = _terms(np.atleast_2d(theta), data)
    h = huber(r, data.huber_delta)
    return (h if weights is None else h * weights).sum(axis=1)


def _grad_and_gn(theta: np.ndarray, data: Data, w: np.ndarray, need_gn: bool = True):
    """Objective, gradient (K, 5) and the IRLS Gauss–Newton matrix (K, 5, 5)."""
    r, p = _terms(theta, data)
    f = (huber(r, data.huber_delta) * w).sum(axis=1)
    J = np.empty(r.shape + (5,))
    J[..., 0], J[..., 1], J[..., 2] = p
    J[..., 3] = -p[1] * data.x
    J[..., 4] = -p[2] * data.y
    psi = np.clip(r, -data.huber_delta, data.huber_delta) * w
    g = np.matmul(psi[:, None, :], J)[:, 0]
    if not need_gn:
        return f, g, None
    omega = w * np.minimum(1.0, data.huber_delta / np.maximum(np.abs(r), 1e-300))
    H = np.matmul(J.transpose(0, 2, 1) * omega[:, None, :], J)
    return f, g, H


def batched_lm(theta0: np.ndarray, data: Data, weights: np.ndarray | None = None, *,
               max_iter: int = 500, rtol: float = 1e-10, chunk: int = 128,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise the (weighted) Huber objective from K starts at once.

    Levenberg–Marquardt on the IRLS majoriser, with the damping adapted per start and steps
    projected onto the box. Starts are processed in chunks: arrays of a few hundred kB stay in
    cache, and measured on 1,000 bootstrap resamples this is twice as fast as one big batch.
    Returns (theta (K, 5), objective (K,), converged (K,) bool): a start counts as converged when
    an accepted step changed its objective by less than rtol (relative).
    """
    theta = np.array(theta0, dtype=float, copy=True)
    K = theta.shape[0]
    w = np.ones((K, data.x.size)) if weights is None else np.asarray(weights, float)
    f = np.empty(K)
    converged = np.zeros(K, bool)
    for lo in range(0, K, chunk):
        sl = slice(lo, lo + chunk)
        theta[sl], f[sl], converged[sl] = _lm_chunk(theta[sl], data, w[sl], max_iter, rtol)
    return theta, f, converged


def _lm_chunk(theta: np.ndarray, data: Data, w: np.ndarray, max_iter: int, rtol: float):
    bounds = data.bounds()
    # starts outside the box (E under a loss floor) are projected first: a start whose objective
    # beats every feasible trial would otherwise reject each step and stay where it is
    theta = np.clip(theta, bounds[:, 0], bounds[:, 1])
    K = theta.shape[0]
    lam = np.full(K, 1e-3)
    f, g, H = _grad_and_gn(theta, data, w)
    converged = np.zeros(K, bool)
    eye = np.eye(5)
    for _ in range(max_iter):
        idx = np.flatnonzero(~converged)
        if not idx.size:
            break
        d = np.sqrt(np.maximum(np.einsum("kii->ki", H[idx]), 1e-300))  # Jacobi scaling
        Hs = H[idx] / d[:, :, None] / d[:, None, :] + lam[idx, None, None] * eye
        step = -np.linalg.solve(Hs, (g[idx] / d)[..., None])[..., 0] / d
        trial = np.clip(theta[idx] + step, bounds[:, 0], bounds[:, 1])
        ft, gt, Ht = _grad_and_gn(trial, data, w[idx])  # computed for all: rejections are rare
        better = ft < f[idx]
        acc = idx[better]
        rel = (f[acc] - ft[better]) / np.maximum(f[acc], 1e-300)
        theta[acc], f[acc], g[acc], H[acc] = trial[better], ft[better], gt[better], Ht[better]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-9)
        converged[acc[rel < rtol]] = True
        rej = idx[~better]
        lam[rej] *= 4.0
        # a start whose damping exploded cannot move any more: it sits at a (constrained) minimum
        converged[rej[lam[rej] > 1e12]] = True
    return theta, f, converged


def _nnls_all_subsets(G: np.ndarray, h: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Nonnegative least squares for many 3-variable problems given Gram matrices.

    Minimises c^T G c - 2 h^T c + q over c >= 0 by solving every active set (7 of them) and keeping
    the best feasible one: exact, and vectorised over the leading axis.
    """
    K = G.shape[0]
    best_c = np.zeros((K, 3))
    best_sse = np.full(K, q)  # c = 0
    for mask in range(1, 8):
        S = [j for j in range(3) if mask >> j & 1]
        Gs = G[:, S][:, :, S]
        hs = h[:, S]
        ok = np.abs(np.linalg.det(Gs)) > 1e-300
        cs = np.zeros((K, len(S)))
        cs[ok] = np.linalg.solve(Gs[ok], hs[ok][..., None])[..., 0]
        feasible = ok & (cs >= 0).all(axis=1)
        sse = q - np.einsum("ki,ki->k", cs, hs)  # at the unconstrained optimum of the subset
        take = feasible & (sse < best_sse)
        best_sse[take] = sse[take]
        full = np.zeros((K, 3))
        full[:, S] = cs
        best_c[take] = full[take]
    return best_c, best_sse


def projection_starts(data: Data, n_grid: int = 30, n_starts: int = 8) -> np.ndarray:
    """Best (E, A, B) for each (alpha, beta) of a grid; return the n_starts best as theta rows."""
    grid = np.linspace(0.05, 1.5, n_grid)
    al, be = (v.ravel() for v in np.meshgrid(grid, grid, indexing="ij"))
    L = np.exp(data.l)
    wrel = 1.0 / L  # relative residuals approximate the log residuals of the objective
    X = np.stack(np.broadcast_arrays(np.ones((al.size, 1)), np.exp(-al[:, None] * data.x),
                                     np.exp(-be[:, None] * data.y)), axis=-1) * wrel[None, :, None]
    yv = L * wrel
    G = np.einsum("kni,knj->kij", X, X)
    h = np.einsum("kni,n->ki", X, yv)
    c, _ = _nnls_all_subsets(G, h, float(yv @ yv))
    bounds = data.bounds()
    with np.errstate(divide="ignore"):
        theta = np.column_stack([np.log(c), al, be])  # log 0 = -inf is clipped to the floor
    theta = np.clip(theta, bounds[:, 0], bounds[:, 1])
    obj = objective(theta, data)
    order = np.argsort(obj)
    return theta[order[:n_starts]]


@dataclass
class ParametricFit:
    theta: np.ndarray
    objective: float
    converged: bool
    message: str
    grad_norm: float
    at_bounds: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, float]:
        e, a, b, al, be = self.theta
        return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
                "alpha": float(al), "beta": float(be),
                "a": float(be / (al + be)), "b": float(al / (al + be))}


def at_bounds(theta: np.ndarray, data: Data) -> list[str]:
    """Names of the parameters sitting on their box bound (fit is then not an interior optimum).

    A coefficient whose term has vanished from the law (A/N^alpha or B/D^beta under BOUND_TOL of the
    loss at every observation) counts as at its lower bound too: its gradient vanishes with the term,
    so the optimiser stops short of the bound wherever rounding leaves it (ln B = -28.9, not -30, on
    one CPU), and the fit is just as degenerate. E at a given loss floor is not listed: that bound is
    a fact about the loss, not an arbitrary edge of the box (:func:`floor_warnings` reports it).
    """
    bounds = data.bounds()
    if data.loss_floor is not None:
        bounds[0, 0] = -np.inf
    names = ("E", "A", "B", "alpha", "beta")
    found = [names[j] for j in range(5)
             if min(abs(theta[j] - bounds[j, 0]), abs(theta[j] - bounds[j, 1])) < BOUND_TOL]
    e, a, b, al, be = theta
    for name, log_term in (("A", a - al * data.x), ("B", b - be * data.y)):
        if name not in found and np.max(np.exp(log_term - data.l)) < BOUND_TOL:
            found.append(name)
    return [name for name in names if name in found]


def fit_parametric(data: Data, n_starts: int = 8) -> ParametricFit:
    """Point fit: variable-projection grid -> batched LM from the best cells -> L-BFGS-B polish."""
    starts = projection_starts(data, n_starts=n_starts)
    theta, f, _ = batched_lm(starts, data)
    best = theta[np.argmin(f)]
    w1 = np.ones((1, data.x.size))

    def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
        fv, gv, _ = _grad_and_gn(t[None, :], data, w1, need_gn=False)
        return float(fv[0]), gv[0]

    res = minimize(fun, best, jac=True, method="L-BFGS-B", bounds=data.bounds(),
                   options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
    theta_best = res.x if res.fun <= f.min() else best
    fbest = min(float(res.fun), float(f.min()))
    _, g = fun(theta_best)
    return ParametricFit(theta=theta_best, objective=fbest, converged=bool(res.success),
                         message=str(res.message), grad_norm=float(np.linalg.norm(g)),
                         at_bounds=at_bounds(theta_best, data))


def floor_warnings(data: Data, theta: np.ndarray) -> list[str]:
    """What a given loss floor did to the fit ``theta``, as warnings (none without a floor).

    Runs whose loss lies more than :data:`FLOOR_SLACK` below the floor mean the floor is wrong (or the
    loss is not the quantity it bounds): the law is then forced above data it should describe. E at
    the floor means the runs alone would put E lower: the law's E is the floor, not an estimate.
    """
    if data.loss_floor is None:
        return []
    floor, lowest = data.loss_floor, float(np.exp(data.l.min()))
    out = []
    if lowest < floor * (1 - FLOOR_SLACK):
        out.append(f"loss floor {floor:.4g} lies above the lowest observed loss {lowest:.4g} (by "
                   f"{(floor - lowest) / floor:.1%}, more than eval-sampling noise): the floor is wrong, or it "
                   "bounds another loss than the one measured. Fix fit.loss_floor (or --loss-floor), or set it "
                   "to null")
    if theta[0] - np.log(floor) < BOUND_TOL:
        out.append(f"Approach 3: E sits at the loss floor {floor:.4g}; the runs alone would put it lower, "
                   "so the law's E is the floor, not an estimate from the runs")
    return out


def loss_at(theta: np.ndarray, N: float, D: float) -> float:
    """L(N, D) = E + A/N^alpha + B/D^beta of one fitted theta."""
    e, a, b, al, be = theta
    return float(np.exp(e) + np.exp(a - al * np.log(N)) + np.exp(b - be * np.log(D)))


def frontier(theta: np.ndarray, C: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute-optimal N*, D*, L* for budgets C under C = k·N·D (Hoffmann eq. 4 with 6 -> k).

    theta may be (5,) or (R, 5); the result broadcasts to (R, len(C)) or (len(C),).
    """
    th = np.atleast_2d(theta)
    e, a, b, al, be = (th[:, j:j + 1] for j in range(5))
    s = al + be
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # an exponent at 0: no frontier (NaN)
        lnG = (np.log(al) + a - np.log(be) - b) / s
        lnCk = np.log(np.asarray(C, float))[None, :] - np.log(k)
        lnN = lnG + be / s * lnCk
        lnD = lnCk - lnN
        L = np.exp(e) + np.exp(a - al * lnN) + np.exp(b - be * lnD)
    out = (np.exp(lnN), np.exp(lnD), L)
    return tuple(o[0] for o in out) if np.ndim(theta) == 1 else out


def frontier_per_size(theta: np.ndarray, C: np.ndarray,
                      curve: FlopsCurve) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute-optimal N*, D*, L* for budgets C under C = fpt(N)·D, each size's own FLOPs per token.

    The loss along an isoFLOP line, L(N, C / fpt(N)), is minimised in ln N by golden section within
    :data:`FRONTIER_BRACKET` e-folds of the constant-k optimum at the curve's median k: no closed form
    exists once k depends on N, and the optimum differs from plugging k(N*) into the constant-k one
    (the cost's slope d ln fpt / d ln N enters the optimality condition). A constant curve gives
    :func:`frontier` exactly. Shapes as :func:`frontier`; NaN where theta has no frontier.
    """
    k = curve.constant_k
    if k is not None:
        return frontier(theta, C, k)
    th = np.atleast_2d(theta)
    e, a, b, al, be = (th[:, j:j + 1] for j in range(5))
    lnC = np.log(np.asarray(C, float))[None, :]
    k_mid = float(np.exp(np.median(curve.ln_per_param(curve.ln_n))))
    center = np.log(frontier(th, np.exp(lnC[0]), k_mid)[0])

    def loss(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(e) + np.exp(a - al * x) + np.exp(b - be * (lnC - curve.ln_per_token(x)))

    lo, hi = center - FRONTIER_BRACKET, center + FRONTIER_BRACKET
    ratio = (np.sqrt(5.0) - 1) / 2
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = loss(x1), loss(x2)
    for _ in range(GOLDEN_STEPS):
        left = f1 < f2  # the minimum lies in [lo, x2]
        lo, hi = np.where(left, lo, x1), np.where(left, x2, hi)
        x1, x2 = np.where(left, hi - ratio * (hi - lo), x2), np.where(left, x1, lo + ratio * (hi - lo))
        f1, f2 = np.where(left, loss(x1), f2), np.where(left, f1, loss(x2))
    lnN = (lo + hi) / 2
    out = (np.exp(lnN), np.exp(lnC - curve.ln_per_token(lnN)), loss(lnN))
    return tuple(o[0] for o in out) if np.ndim(theta) == 1 else out
