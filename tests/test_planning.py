"""Sweep policy (recipe) and mechanics (planning): windows, batch law, exact budgets, stable run ids."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from flops_fit import recipe
from flops_fit.config import prepare_config
from flops_fit.planning import SizeCatalog, SizeInfo, plan_row, run_id, run_identity, run_row, as_table
from flops_fit.recipe import Recipe


class MLP(nn.Module):
    """N = 32·w + w² + w (three matmuls): grows smoothly with the width knob."""

    def __init__(self, width: int, n_in: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, width, bias=False), nn.Linear(width, width, bias=False),
                                 nn.Linear(width, 1, bias=False))

    def forward(self, x):
        return self.net(x)


def config(sizes=None, budgets=(1e9, 1e10), **sweep):
    """A prepared config for the MLP above (``sizes`` None: the planner searches the knob)."""
    model = {"class": "m:MLP", "size_param": "width"}
    if sizes is not None:
        model["sizes"] = sizes
    return prepare_config({
        "model": model, "dataset": {"target": "d:D"}, "loss": {"target": "l:L"},
        "budgets": list(budgets), "sweep": {"sizes_per_budget": 4, **sweep},
    })


def catalog(cfg) -> SizeCatalog:
    return SizeCatalog(MLP, cfg["model"], "6N", torch.zeros(1, 32), tokens_per_sample=1)


def test_window_is_centred_on_the_expected_optimum():
    params = {s: 100 * s * s for s in (1, 2, 4, 8, 16, 32, 64, 128)}
    sizes, warnings = recipe.select_sizes(1e15, params, 5, center=100 * 16 * 16)
    assert sizes == [4, 8, 16, 32, 64] and warnings == []


def test_window_at_the_edge_warns_to_add_sizes():
    params = {s: 100 * s * s for s in (1, 2, 4, 8)}
    sizes, warnings = recipe.select_sizes(1e20, params, 3, center=1e9)
    assert sizes == [2, 4, 8]
    assert "add larger sizes" in warnings[0]


def test_target_grid_is_log_spaced_and_centred():
    targets = recipe.target_params(1e6, 5, 16)
    assert targets[0] == pytest.approx(2.5e5) and targets[-1] == pytest.approx(4e6)
    assert targets[2] == pytest.approx(1e6)
    ratios = [b / a for a, b in zip(targets, targets[1:])]
    assert max(ratios) == pytest.approx(min(ratios))


def test_extension_continues_the_window_spacing():
    assert recipe.extension_params([1, 2, 4, 8], "larger", 2) == pytest.approx([16, 32])
    assert recipe.extension_params([1, 2, 4, 8], "smaller", 1) == pytest.approx([0.5])


@pytest.mark.parametrize("tokens", [1e4, 3.3e5, 7.77e6, 2e8])
@pytest.mark.parametrize("steps", [50, 400])
def test_batch_and_steps_hit_the_tokens_within_one_percent(tokens, steps):
    batch, n_steps = recipe.batch_and_steps(tokens, 64, steps, None)
    assert abs(batch * n_steps * 64 / tokens - 1) <= 0.01 or batch == 1
    assert abs(n_steps / steps - 1) < 0.2 or batch == 1


def test_default_batch_law_is_deepseeks_one_batch_per_budget():
    sweep = Recipe.from_config(config())
    small = sweep.batch_plan(10**5, 1e18, 1e9, 64)
    big = sweep.batch_plan(10**7, 1e18, 1e9, 64)
    assert small[0] == big[0] and small[2] == "batch law"  # the same batch across an IsoFLOP window
    # DeepSeek LLM: B_opt = 0.292 · C^0.3271 tokens
    assert small[0] * 64 == pytest.approx(0.292 * 1e18**0.3271, rel=0.01)
    assert sweep.batch_plan(10**5, 1e20, 1e9, 64)[0] / small[0] == pytest.approx(100**0.3271, rel=0.01)


def test_porians_law_by_config_and_floored_batches_are_said():
    porian = Recipe.from_config(config(batch={"tokens": 327680, "reference_params": 1.08e8, "params_exponent": 2 / 3,
                                              "flops_exponent": 0}))
    small = porian.batch_plan(10**6, 1e15, 1e9, 64)
    big = porian.batch_plan(8 * 10**6, 1e15, 1e9, 64)
    assert big[0] / small[0] == pytest.approx(4, rel=0.05)
    assert porian.batch_plan(108_000_000, 1e15, 1e12, 2048)[0] == 160  # 160 x 2048 at 108M
    batch, _, rule = porian.batch_plan(100, 1e9, 1e6, 64)  # a law of a fraction of one sample
    assert batch == 1 and "floored" in rule
    assert dataclasses.replace(porian, steps=100).batch_plan(10**6, 1e15, 6.4e6, 64)[:2] == (1000, 100)


def test_lr_rule_and_warmup_cap():
    assert recipe.learning_rate(800, 100, 0.01, -1 / 3) == pytest.approx(0.005)
    assert recipe.learning_rate(800, 100, 0.01, 0) == 0.01
    warm = dataclasses.replace(Recipe.from_config(config()), warmup_tokens_per_param=1.0, max_warmup_fraction=0.1)
    assert warm.warmup_steps(params=10_000, tokens_per_step=1000, steps=400, flops_per_token=6e4) == 10
    assert warm.warmup_steps(params=10**6, tokens_per_step=1000, steps=400, flops_per_token=6e6) == 40


def test_plan_row_hits_its_budget_and_warns_about_floored_batches():
    cfg = config()
    info = SizeInfo(params=50_000, params_total=60_000, flops_per_token=300_000)
    row, warnings = plan_row(Recipe.from_config(cfg), "width", 1e11, 64, info, tokens_per_sample=16, lr=0.01)
    assert abs(row["achieved_flops"] / 1e11 - 1) <= 0.01 and warnings == []
    assert row["tokens"] == row["steps"] * row["batch_size"] * 16
    assert row["warmup_steps"] <= 0.1 * row["steps"] and row["role"] == "sweep"
    tiny = SizeInfo(params=5, params_total=6, flops_per_token=30)
    _, warnings = plan_row(Recipe.from_config(cfg), "width", 1e3, 1, tiny, tokens_per_sample=16, lr=0.01)  # 0.292·C^0.33: 2.8 tokens
    assert any("floored" in w and "sweep.batch" in w for w in warnings)


def test_catalog_searches_the_knob_without_sizes_and_keeps_given_sizes():
    searched = catalog(config())
    size = searched.size_for(50_000)
    assert isinstance(size, int) and abs(math.log(searched.info(size).params / 50_000)) < 0.05
    given = catalog(config(sizes=[16, 64, 256, 1024]))
    assert given.size_for(50_000) == 256 and set(given.candidates()) == {16, 64, 256, 1024}


def test_run_ids_are_stable_and_path_safe():
    assert run_id(3e11, "d_model", 48.0) == "C3e11_d_model48"
    assert run_id(6.5e11, "width", 0.5) == "C6.5e11_width0.5"
    assert run_id(1e10, "width", 8, "_seed1") == "C1e10_width8_seed1"
    assert "/" not in run_id(1.234567e21, "n", 3)


def test_run_row_keeps_integers_and_identity_ignores_bookkeeping():
    info = SizeInfo(params=50_000, params_total=60_000, flops_per_token=300_000)
    row, _ = plan_row(Recipe.from_config(config()), "width", 1e11, 64, info, tokens_per_sample=16, lr=0.01, wave=3)
    table = as_table([row])
    back = run_row(table, row["run_id"])
    assert isinstance(back["steps"], int) and isinstance(back["size"], int) and back["wave"] == 3
    assert math.isclose(back["budget"], 1e11)
    identity = run_identity(back)
    assert "wave" not in identity and "role" not in identity and identity["lr"] == 0.01
    with pytest.raises(KeyError):
        run_row(table, "nope")
