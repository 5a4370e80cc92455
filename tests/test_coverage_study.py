"""The coverage study (bench/coverage.py): its truths are right, and a short run of it covers.

The full study (3 families, 100+ trials) is a benchmark; here 12 Chinchilla-form trials with 100
resamples check that the study runs end to end on the default design and that today's intervals are
not grossly overconfident (a loose bound: 12 trials).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from fitting_support import TRUE_A, TRUTH, true_optimum as closed_form_optimum

PATH = Path(__file__).resolve().parents[1] / "bench" / "coverage.py"


@pytest.fixture(scope="module")
def cov():
    spec = importlib.util.spec_from_file_location("coverage_study", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def design(cov):
    return cov.Design.default()


def test_design_is_the_default_sweep(design):
    assert design.budgets == (3e11, 6.5e11, 1.4e12, 3e12)
    assert design.targets == (1e13, 1e14)
    assert (design.sizes_per_budget, design.window_span, design.max_extensions, design.sizes_per_extension) == (6, 25.0, 2, 2)


def test_truth_of_a_chinchilla_law_is_its_closed_form(cov, design):
    law = cov.Law(**TRUTH)
    assert law.chinchilla_form
    assert cov.true_exponent(law, design.budgets) == pytest.approx(TRUE_A, abs=1e-3)
    for C in (*design.budgets, *design.targets):
        N, L = cov.true_optimum(law, C)
        assert N == pytest.approx(closed_form_optimum(C), rel=1e-4)
        assert L == pytest.approx(float(law.loss(N, C / (6 * N))), rel=1e-12)
        assert L < float(law.loss(1.05 * N, C / (6 * 1.05 * N)))


def test_drawn_laws_meet_their_specification(cov, design):
    for trial in range(20):
        rng = np.random.default_rng([0, 0, trial])
        law = cov.chinchilla_law(rng)
        assert 0.25 <= law.alpha <= 0.5 and 0.25 <= law.beta <= 0.5 and 1.0 <= law.E <= 2.5
        N, L = cov.true_optimum(law, 1e12)
        assert 1e4 * (1 - 1e-6) <= N <= 1e5 * (1 + 1e-6)
        assert 0.15 - 1e-6 <= (L - law.E) / law.E <= 0.40 + 1e-6
        assert N == pytest.approx(cov.chinchilla_optimum(law, 1e12), rel=1e-4)
        assert cov.true_exponent(law, design.budgets) == pytest.approx(law.beta / (law.alpha + law.beta), abs=1e-3)
        # the misspecified family: the exponent the sweep sees is not the one at the targets
        odd = cov.misspecified_law(np.random.default_rng([0, 1, trial]))
        assert not odd.chinchilla_form
        local = [cov.true_exponent(odd, cs) for cs in (design.budgets, design.targets)]
        assert all(0.2 < a < 0.8 for a in local)


def test_a_sweep_is_placed_like_the_default(cov, design):
    rng = np.random.default_rng(1)
    law, shift = cov.draw_law("shared_shift", rng, design.budgets)
    sweep = cov.place_sweep(law, shift, design, 0.005, 2, rng)
    runs = sweep.runs
    assert set(runs["budget"]) == set(design.budgets)
    assert np.allclose(runs["C"], 6 * runs["N"] * runs["D"])
    for C, g in runs.groupby("budget"):
        assert len(g) in (6, 8, 10)
        first = np.sort(g["N"].to_numpy()[:6])
        assert first[-1] / first[0] == pytest.approx(25.0)
    reps = sweep.replicates
    assert len(reps) == 2 * (runs["budget"] == design.budgets[0]).sum() and set(reps["budget"]) == {design.budgets[0]}
    sd = cov.replicate_noise_sd(sweep)
    assert 0 < sd < 0.05


def test_short_study_covers(cov, design):
    records = cov.run_study(["chinchilla"], 12, design, noise=0.005, bootstrap=100, seed_replicates=1)
    summary = cov.summarise(records).set_index("family")
    row = summary.loc["chinchilla"]
    assert row["trials"] == 12 and records["failed"].isna().all()
    for key in ("a2", "a3", "N14"):
        assert row[key + "_cov"] >= 0.75, cov.format_table(summary.reset_index())
    assert 1.0 <= row["N14_err"] < 2.0
    assert math.isfinite(row["a2_width"]) and row["a2_width"] > 0
    assert "chinchilla" in cov.format_table(summary.reset_index())
