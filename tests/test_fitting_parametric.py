"""Approach 3: the Epoch refit of Chinchilla, the optimiser against scipy, the frontier formula."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from flops_fit.fitting import parametric
from fitting_support import TRUTH, data_file, law


def epoch_data() -> parametric.Data:
    """Epoch's preprocessing: drop the 5 highest losses (240 rows remain), D = C / (6N)."""
    raw = pd.read_csv(data_file("epoch_chinchilla_svg_extracted_data.csv")).sort_values("loss").iloc[:-5]
    N, C = raw["Model Size"].to_numpy(), raw["Training FLOP"].to_numpy()
    return parametric.Data.from_arrays(N, C / (6 * N), raw["loss"].to_numpy())


def test_reproduces_epoch_grid_refit_of_chinchilla():
    """Published (Besiroglu et al. 2024, grid + L-BFGS-B): A=477.84 B=2143.86 E=1.8172 alpha=.34731 beta=.36718."""
    fit = parametric.fit_parametric(epoch_data())
    p = fit.params
    assert p["alpha"] == pytest.approx(0.3473, abs=5e-4)
    assert p["beta"] == pytest.approx(0.3672, abs=5e-4)
    assert p["E"] == pytest.approx(1.8172, abs=1e-3)
    assert p["A"] == pytest.approx(477.8, rel=0.01)
    assert p["B"] == pytest.approx(2143.9, rel=0.01)
    assert p["a"] == pytest.approx(0.514, abs=1e-3)
    assert fit.objective == pytest.approx(0.0010182740, rel=1e-6)
    assert fit.converged and not fit.at_bounds and fit.grad_norm < 1e-6


def test_batched_bootstrap_solver_matches_scipy_on_resamples():
    data = epoch_data()
    point = parametric.fit_parametric(data)
    W = np.random.default_rng(1).multinomial(data.x.size, np.full(data.x.size, 1 / data.x.size), size=3).astype(float)
    theta, f, converged = parametric.batched_lm(np.repeat(point.theta[None], 3, 0), data, W, rtol=1e-12)
    assert converged.all()
    for r in range(3):
        def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
            fv, gv, _ = parametric._grad_and_gn(t[None], data, W[r:r + 1], need_gn=False)
            return float(fv[0]), gv[0]

        ref = minimize(fun, point.theta, jac=True, method="L-BFGS-B", bounds=data.bounds(),
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        assert f[r] <= ref.fun * (1 + 1e-9)  # at least as low as L-BFGS-B from the same start
        np.testing.assert_allclose(theta[r, 3:], ref.x[3:], atol=5e-4)


def test_frontier_matches_published_golden_numbers():
    """anchors-scaling §1.2 (Epoch grid L-BFGS-B row): C=1e21 N*=2.79e9 D/N=21.4; C=1e24 N*=9.72e10 L*=1.9592."""
    theta = np.array([np.log(1.8172), np.log(477.84), np.log(2143.86), 0.34731, 0.36718])
    N, D, L = parametric.frontier(theta, np.array([1e21, 1e24]), 6.0)
    assert N[0] == pytest.approx(2.79e9, rel=0.005) and D[0] / N[0] == pytest.approx(21.4, rel=0.005)
    assert N[1] == pytest.approx(9.72e10, rel=0.005) and L[1] == pytest.approx(1.9592, abs=1e-4)
    # the frontier really is the minimum of the law along C = k N D, for another k
    C, k = 3e20, 7.5
    n_grid = np.geomspace(1e8, 1e11, 20001)
    n8, _, l8 = parametric.frontier(theta, np.array([C]), k)
    t = {"E": 1.8172, "A": 477.84, "B": 2143.86, "alpha": 0.34731, "beta": 0.36718}
    losses = law(n_grid, C / (k * n_grid), t)
    assert n8[0] == pytest.approx(n_grid[np.argmin(losses)], rel=1e-3)
    assert l8[0] == pytest.approx(losses.min(), abs=1e-9)


def test_exact_law_is_recovered_and_a_degenerate_fit_reports_bounds():
    rng = np.random.default_rng(0)
    N, D = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 60)), np.exp(rng.uniform(np.log(1e9), np.log(1e12), 60))
    fit = parametric.fit_parametric(parametric.Data.from_arrays(N, D, law(N, D)))
    for name in ("E", "alpha", "beta"):
        assert fit.params[name] == pytest.approx(TRUTH[name], rel=1e-4)
    # loss that does not depend on D at all: beta has nothing to fit and the E/B terms merge
    flat = parametric.fit_parametric(parametric.Data.from_arrays(N, D, 2.0 + 400 / N ** 0.3))
    assert flat.params["alpha"] == pytest.approx(0.3, abs=1e-3)
    assert flat.at_bounds  # the D term is driven to a bound: reported, not hidden


def _noisy_law_data(floor: float | None = None) -> parametric.Data:
    """60 runs of the TRUTH law (E = 1.82) with 1 % noise, whose lowest loss is about 2.2."""
    rng = np.random.default_rng(3)
    N, D = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 60)), np.exp(rng.uniform(np.log(1e9), np.log(1e12), 60))
    return parametric.Data.from_arrays(N, D, law(N, D) * np.exp(rng.normal(0, 0.01, 60)), loss_floor=floor)


def test_a_loss_floor_above_the_fitted_E_bounds_E_the_bootstrap_and_every_prediction():
    free = parametric.fit_parametric(_noisy_law_data())
    assert free.params["E"] < 2.0  # the floor below binds
    data = _noisy_law_data(floor=2.0)
    fit = parametric.fit_parametric(data)
    assert fit.params["E"] == pytest.approx(2.0, rel=1e-9)
    assert "E" not in fit.at_bounds  # a known floor is no degenerate edge of the search box
    assert any("E sits at the loss floor 2" in w for w in parametric.floor_warnings(data, fit.theta))
    _, _, L = parametric.frontier(fit.theta, np.geomspace(1e18, 1e30, 13), 6.0)
    assert (L >= 2.0).all() and L[-1] == pytest.approx(2.0, abs=1e-2)  # the law approaches its floor
    # bootstrap resamples (started below the floor) obey the same bound
    W = np.random.default_rng(0).multinomial(60, np.full(60, 1 / 60), size=20).astype(float)
    theta_b, _, _ = parametric.batched_lm(np.repeat(free.theta[None], 20, 0), data, W)
    assert (np.exp(theta_b[:, 0]) >= 2.0 - 1e-12).all()


def test_a_floor_that_does_not_bind_changes_nothing_and_a_wrong_floor_is_named():
    free = parametric.fit_parametric(_noisy_law_data())
    loose = _noisy_law_data(floor=1.0)
    fit = parametric.fit_parametric(loose)
    np.testing.assert_allclose(fit.theta, free.theta, rtol=1e-6, atol=1e-8)
    assert parametric.floor_warnings(loose, fit.theta) == []
    lowest = float(np.exp(loose.l.min()))
    # within eval-sampling noise of the lowest run: no complaint about the floor
    near = _noisy_law_data(floor=lowest * 1.005)
    assert not any("floor is wrong" in w for w in parametric.floor_warnings(near, parametric.fit_parametric(near).theta))
    # clearly above runs that were measured: the floor is wrong, and the fit still runs (E pinned to it)
    wrong = _noisy_law_data(floor=lowest * 1.05)
    fit = parametric.fit_parametric(wrong)
    assert fit.params["E"] == pytest.approx(lowest * 1.05, rel=1e-9)
    assert any("floor is wrong" in w for w in parametric.floor_warnings(wrong, fit.theta))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="loss_floor must be a positive number"):
            _noisy_law_data(floor=bad)
