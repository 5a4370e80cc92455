"""Adaptive placement and lr calibration as pure functions of the config and the finished runs.

The losses are a known IsoFLOP world, L(N, D) = E + A/N^α + B/D^β, so every decision (which budget
next, which side to extend, where to centre) can be checked against the truth without training.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from flops_fit import calibration
from flops_fit.placement import MAX_WAVES, Placer, predicted_center, read_profile
from flops_fit.planning import SizeCatalog, as_table
from flops_fit.recipe import Recipe
from test_planning import MLP
from test_planning import config as planning_config


def law(N, D):
    """A Chinchilla-like world: N* ∝ C^0.5 (α = β) at 20 tokens per parameter (B/A = 20^0.34)."""
    return 1.7 + 400 / N**0.34 + 400 * 20**0.34 / D**0.34


def config(sizes=None, **sweep):
    return planning_config(sizes, budgets=(1e12, 4e12, 1.6e13), **{"sizes_per_budget": 6, "steps": 100, "seed_replicates": 0, **sweep})


def placer(cfg) -> Placer:
    catalog = SizeCatalog(MLP, cfg["model"], "6N", torch.zeros(1, 32), tokens_per_sample=1)
    return Placer(Recipe.from_config(cfg), cfg["budgets"], catalog, lr_of=lambda n: 1e-3)


def run_waves(p: Placer, loss=law, waves: int | None = None):
    """Place waves until nothing new comes, 'training' each run by reading the law."""
    table, losses, notes = as_table([]), {}, []
    for wave in range(waves or MAX_WAVES):
        rows, more = p.next_wave(table, losses, wave)
        notes += more
        if not rows:
            break
        new = as_table(rows)
        table = pd.concat([table, new], ignore_index=True) if len(table) else new
        losses.update({r.run_id: loss(r.params, r.tokens) for r in new.itertuples()})
    return table, losses, notes


def true_optimum(budget: float) -> float:
    N = np.exp(np.linspace(np.log(1e2), np.log(1e8), 20001))
    return float(N[np.argmin(law(N, budget / (6 * N)))])


def test_budgets_are_placed_one_wave_at_a_time_in_ascending_order():
    p = placer(config())
    rows, _ = p.next_wave(as_table([]), {}, 0)
    assert {r["budget"] for r in rows} == {1e12} and len(rows) == 6
    table, _, _ = run_waves(p)
    assert (table.groupby("budget")["wave"].min().diff().dropna() > 0).all()


def test_a_poor_tokens_per_param_is_corrected_and_every_budget_brackets():
    # tokens_per_param 0.2 puts the first window 10x too large in N; extensions and the fits below fix it
    table, losses, _ = run_waves(placer(config(tokens_per_param=0.2)))
    for budget, rows in table.groupby("budget"):
        profile = read_profile(budget, rows, losses)
        assert profile.bracketed, (budget, profile.reason)
        assert abs(math.log(profile.n_opt / true_optimum(budget))) < math.log(1.3)
    first = table[table["budget"] == 1e12]
    assert first["wave"].nunique() > 1, "the first budget should have been extended to smaller sizes"
    assert first[first["wave"] > 0]["params"].max() < first[first["wave"] == 0]["params"].min()


def test_later_windows_are_centred_on_the_optima_below():
    table, losses, _ = run_waves(placer(config()))
    last = table[table["budget"] == 1.6e13]
    center = math.exp(np.log(last["params"]).mean())
    assert abs(math.log(center / true_optimum(1.6e13))) < math.log(1.6)


def test_an_edge_minimum_is_extended_on_its_side_up_to_max_extensions():
    def always_bigger(N, D):  # loss falls with N forever: no window can bracket it
        return 10 / math.log(N)

    table, _, notes = run_waves(placer(config(max_extensions=2, sizes_per_extension=2)), loss=always_bigger)
    first = table[table["budget"] == 1e12].sort_values("wave")
    assert first["wave"].nunique() == 3 and len(first) == 6 + 2 * 2
    assert (first.groupby("wave")["params"].min().diff().dropna() > 0).all()  # each extension is larger
    assert any("still not bracketed after 2 extension(s)" in n for n in notes)


def test_given_sizes_are_used_as_given():
    sizes = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    table, _, _ = run_waves(placer(config(sizes=sizes)))
    assert set(table["size"]) <= set(sizes)


def test_fixed_placement_plans_every_budget_at_once_and_replicates_the_smallest():
    p = placer(config(placement="fixed", seed_replicates=2))
    rows, _ = p.next_wave(as_table([]), {}, 0)
    table = as_table(rows)
    assert set(table["budget"]) == {1e12, 4e12, 1.6e13}
    replicates = table[table["role"] == "replicate"]
    assert len(replicates) == 2 * 6 and set(replicates["seed"]) == {1, 2}
    assert replicates["run_id"].str.endswith(("_seed1", "_seed2")).all()
    assert p.next_wave(table, {}, 1) == ([], [])


def test_adaptive_replicates_come_once_the_smallest_budget_is_settled():
    table, _, _ = run_waves(placer(config(seed_replicates=1)))
    replicates = table[table["role"] == "replicate"]
    first = table[(table["budget"] == 1e12) & (table["role"] == "sweep")]
    assert set(replicates["size"]) == set(first["size"]) and replicates["wave"].min() > first["wave"].min()


def test_center_prediction_uses_a_power_law_through_the_optima_below():
    from flops_fit.placement import Profile

    settled = [Profile(1e12, True, None, 1e5, 1e5, ""), Profile(1e13, True, None, 4e5, 4e5, "")]
    assert predicted_center(1e14, settled, 20) == pytest.approx(1.6e6)
    assert predicted_center(4e12, settled[:1], 20) == pytest.approx(2e5)
    assert predicted_center(6 * 20 * 1e10, [], 20) == pytest.approx(1e5)


# ------------------------------------------------------------------------------------ lr calibration
def test_best_lr_is_the_parabola_vertex_and_edges_are_flagged():
    lrs = np.array([0.001, 0.002, 0.004, 0.008, 0.016])
    losses = (np.log(lrs) - np.log(0.005)) ** 2 + 2
    best, at_edge = calibration.best_lr(lrs, losses)
    assert best == pytest.approx(0.005, rel=1e-6) and not at_edge
    best, at_edge = calibration.best_lr(lrs, -np.log(lrs))
    assert best == 0.016 and at_edge
    losses[4] = np.nan  # a diverged run counts as worst
    assert calibration.best_lr(lrs, losses)[0] == pytest.approx(0.005, rel=1e-6)


def test_lr_law_recovers_the_exponent_and_warns_at_the_grid_edge():
    cfg = config(lr=0.3, lr_exponent=-0.4, lr_reference_params=1, lr_calibration={"factors": [0.25, 0.5, 1, 2, 4]})
    catalog = SizeCatalog(MLP, cfg["model"], "6N", torch.zeros(1, 32), tokens_per_sample=1)
    table, _ = calibration.plan_calibration(Recipe.from_config(cfg), 1e12, catalog, [16, 32, 64, 128, 256, 512])
    assert len(table) == 3 * 5 and (table["role"] == "calibration").all()
    assert table["run_id"].str.contains("_lrx").all()

    def optimum(n):  # not the configured rule: the calibration has to find it
        return 0.5 * n ** -0.45

    losses = {r.run_id: 2 + (math.log(r.lr) - math.log(optimum(r.params))) ** 2 for r in table.itertuples()}
    fitted = calibration.fit_lr_law(table, losses, [-1.0, 0.0])
    assert fitted["exponent"] == pytest.approx(-0.45, abs=0.02) and fitted["warnings"] == []
    assert calibration.law_lr(fitted)(10_000) == pytest.approx(optimum(10_000), rel=0.05)
    far = {k: 2 - math.log(table.set_index("run_id").loc[k, "lr"]) for k in losses}  # higher lr always better
    assert any("largest tried" in w for w in calibration.fit_lr_law(table, far, [-1.0, 0.0])["warnings"])
