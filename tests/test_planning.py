"""Sweep policy (recipe) and mechanics (planning): sizes per budget, exact budgets, stable run ids."""

import math

import pytest

from flops_fit import recipe
from flops_fit.config import prepare_config
from flops_fit.planning import SizeInfo, plan_sweep, run_id, run_row


def test_window_is_centred_on_the_expected_optimum():
    params = {s: 100 * s * s for s in (1, 2, 4, 8, 16, 32, 64, 128)}
    # expected optimum for C = 6 * 20 * N^2 at N = 100 * 16^2
    budget = 6 * 20 * (100 * 16 * 16) ** 2
    sizes, warnings = recipe.select_sizes(budget, params, 5, 20)
    assert sizes == [4, 8, 16, 32, 64] and warnings == []


def test_window_at_the_edge_warns_to_add_sizes():
    params = {s: 100 * s * s for s in (1, 2, 4, 8)}
    sizes, warnings = recipe.select_sizes(1e20, params, 3, 20)
    assert sizes == [2, 4, 8]
    assert "add larger sizes" in warnings[0]


@pytest.mark.parametrize("tokens", [1e4, 3.3e5, 7.77e6, 2e8])
@pytest.mark.parametrize("steps", [50, 400])
def test_batch_and_steps_hit_the_tokens_within_one_percent(tokens, steps):
    batch, n_steps = recipe.batch_and_steps(tokens, 64, steps, None)
    assert abs(batch * n_steps * 64 / tokens - 1) <= 0.01 or batch == 1
    assert abs(n_steps / steps - 1) < 0.2 or batch == 1


def test_lr_rule_and_warmup_cap():
    assert recipe.learning_rate(800, 100, 0.01, -1 / 3) == pytest.approx(0.005)
    assert recipe.learning_rate(800, 100, 0.01, 0) == 0.01
    assert recipe.warmup_steps(params=10_000, tokens_per_step=1000, steps=400, tokens_per_param=1, max_fraction=0.1) == 10
    assert recipe.warmup_steps(params=10**6, tokens_per_step=1000, steps=400, tokens_per_param=1, max_fraction=0.1) == 40


def _config(**sweep):
    return prepare_config({
        "model": {"class": "m:M", "size_param": "width", "sizes": [8, 16, 32, 64, 128]},
        "dataset": {"target": "d:D"}, "loss": {"target": "l:L"},
        "budgets": [1e9, 1e10], "sweep": {"sizes_per_budget": 4, **sweep},
    })


SIZES = {s: SizeInfo(params=50 * s * s, params_total=60 * s * s, flops_per_token=6 * 50 * s * s) for s in (8, 16, 32, 64, 128)}


def test_plan_rows_hit_their_budgets_and_record_conventions():
    table, warnings = plan_sweep(_config(steps=100), SIZES, tokens_per_sample=16)
    assert len(table) == 8 and not [w for w in warnings if "off the budget" in w]
    assert ((table.achieved_flops / table.planned_flops - 1).abs() <= 0.01).all()
    assert (table.tokens == table.steps * table.batch_size * table.tokens_per_sample).all()
    assert (table.achieved_flops == table.tokens * table.flops_per_token).all()
    assert set(table.flops_convention) == {"6N"}
    # lr falls with N (reference = smallest size) and warmup never exceeds 10 % of the run
    assert table.groupby("budget").lr.apply(lambda s: s.is_monotonic_decreasing).all()
    assert (table.warmup_steps <= 0.1 * table.steps).all()


def test_growing_the_config_keeps_existing_ids_and_rows():
    before, _ = plan_sweep(_config(steps=100), SIZES, 16)
    config = _config(steps=100)
    config["budgets"].append(1e11)
    after, _ = plan_sweep(config, SIZES, 16)
    assert set(before.run_id) < set(after.run_id)
    common = after[after.run_id.isin(before.run_id)].reset_index(drop=True)
    assert common.equals(before.reset_index(drop=True))


def test_explicit_budget_sizes_and_fixed_batch():
    table, _ = plan_sweep(_config(budget_sizes=[{"budget": 1e9, "sizes": [8, 16, 64, 128]}]), SIZES, 16, fixed_batch=4)
    assert list(table[table.budget == 1e9]["size"]) == [8, 16, 64, 128]
    assert set(table.batch_size) == {4}
    with pytest.raises(ValueError, match="not in model.sizes"):
        plan_sweep(_config(budget_sizes=[{"budget": 1e9, "sizes": [8, 16, 32, 100]}]), SIZES, 16)


def test_run_ids_are_stable_and_path_safe():
    assert run_id(3e11, "d_model", 48.0) == "C3e11_d_model48"
    assert run_id(6.5e11, "width", 0.5) == "C6.5e11_width0.5"
    assert "/" not in run_id(1.234567e21, "n", 3)


def test_run_row_keeps_integers(tmp_path):
    table, _ = plan_sweep(_config(steps=100), SIZES, 16)
    row = run_row(table, table.run_id[0])
    assert isinstance(row["steps"], int) and isinstance(row["size"], int)
    assert math.isclose(row["budget"], 1e9)
    with pytest.raises(KeyError):
        run_row(table, "nope")
