"""Issue 25.1: measured FLOPs per token by default, 6N beside them, and the fit in each size's own FLOPs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fitting_support import TRUTH, law, true_optimum
from flops_fit.config import prepare_config
from flops_fit.examples.gpt import GPT
from flops_fit.fitting.flops_curve import FlopsCurve
from flops_fit.flops import flops_per_token, matmul_params
from flops_fit.fitting.parametric import frontier, frontier_per_size
from flops_fit.placement import Placer
from flops_fit.planning import SizeCatalog, as_table, six_n_warning
from flops_fit.recipe import Recipe

GPT_KWARGS = {"n_layer": 2, "vocab_size": 96, "block_size": 64, "head_dim": 16}
N_IN, REPS = 8, 10


class Linears(nn.Module):
    """A pure matmul MLP without biases: N = N_IN·w + w, and per sample forward 2N, backward 2N for the
    weights and 2·w for the head's input (the first layer's input needs no gradient): 6N − 2·N_IN·w."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_IN, width, bias=False), nn.ReLU(), nn.Linear(width, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Heavy(Linears):
    """The MLP above plus REPS products with a fixed (parameter-free) w×w matrix: 4·w² more FLOPs per
    sample each (forward and the input gradient), which 6N cannot see."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.register_buffer("mix", torch.eye(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net[0](x)
        for _ in range(REPS):
            h = h @ self.mix
        return self.net[2](self.net[1](h))


def config(size_param: str = "d_model", **sweep) -> dict:
    """A prepared config with every default (no ``sweep.flops_per_token``) unless ``sweep`` sets it."""
    return prepare_config({"model": {"class": "m:M", "size_param": size_param}, "dataset": {"target": "d:D"},
                           "loss": {"target": "l:L"}, "budgets": [1e11, 1e12], "sweep": sweep})


def gpt_catalog(cfg: dict) -> SizeCatalog:
    model = {**cfg["model"], "kwargs": GPT_KWARGS}
    return SizeCatalog(GPT, model, Recipe.from_config(cfg).flops_per_token, torch.zeros(1, 64, dtype=torch.long), 64)


def test_the_default_is_measured_and_the_shipped_gpt_is_far_from_6n_when_small():
    """Attention and the other non-matmul-parameter FLOPs make a small GPT cost much more than 6N."""
    catalog = gpt_catalog(config())
    small, large = catalog.info(16), catalog.info(187)
    assert small.flops_per_token_6n == 6 * small.params
    assert small.flops_per_token / small.flops_per_token_6n > 1.3
    assert 1.0 < large.flops_per_token / large.flops_per_token_6n < 1.1
    six_n = gpt_catalog(config(flops_per_token="6N")).info(16)
    assert six_n.flops_per_token == six_n.flops_per_token_6n


@pytest.mark.parametrize("model_cls, extra", [(Linears, 0), (Heavy, 4 * REPS)])
def test_a_model_with_known_flops_gets_its_count_by_default(model_cls, extra):
    cfg = config("width")
    catalog = SizeCatalog(model_cls, cfg["model"], Recipe.from_config(cfg).flops_per_token, torch.zeros(1, N_IN), 1)
    w = 16
    info = catalog.info(w)
    assert info.params == N_IN * w + w
    assert info.flops_per_token == 6 * info.params - 2 * N_IN * w + extra * w * w


class NotOnMeta(GPT):
    """The shipped GPT with a forward that reads a value (``.item()``): it cannot run on the meta device,
    so its FLOPs are counted on real CPU tensors, where attention runs in a fused kernel."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        assert idx.max().item() < self.wte.num_embeddings
        return super().forward(idx)


def test_attention_is_counted_when_the_model_cannot_run_on_meta():
    """The fused CPU attention kernel has no FLOP formula: counted on real tensors, attention was skipped."""
    example = torch.zeros(2, 64, dtype=torch.long)
    on_meta = flops_per_token(GPT(d_model=32, **GPT_KWARGS), "measured", example)[0]
    on_cpu = flops_per_token(NotOnMeta(d_model=32, **GPT_KWARGS), "measured", example)[0]
    assert on_cpu == on_meta
    attention = 12 * GPT_KWARGS["n_layer"] * 64 * 32  # Q·Kᵀ and A·V, forward and backward, per token
    assert on_cpu - 6 * matmul_params(GPT(d_model=32, **GPT_KWARGS)) > 0.8 * attention  # 6N misses it


def test_the_plan_warns_once_when_6n_is_more_than_10_percent_off():
    cfg = config(sizes_per_budget=4)
    catalog = gpt_catalog(cfg)
    rows, _ = Placer(Recipe.from_config(cfg), cfg["budgets"], catalog, lr_of=lambda n: 1e-3).next_wave(as_table([]), {}, 0)
    table = as_table(rows)
    assert (table["flops_per_token_6n"] == 6 * table["params"]).all()
    assert (table["flops_per_token"] > table["flops_per_token_6n"]).all()
    warning = six_n_warning(table)
    assert len(warning) == 1 and "measured" in warning[0] and "more than 10% off" in warning[0]
    ratios = table["flops_per_token"] / table["flops_per_token_6n"]
    assert f"{ratios.max():.3g}x" in warning[0] and f"{ratios.min():.3g}x" in warning[0]
    cfg6 = config(sizes_per_budget=4, flops_per_token="6N")
    rows6, _ = Placer(Recipe.from_config(cfg6), cfg6["budgets"], gpt_catalog(cfg6), lr_of=lambda n: 1e-3).next_wave(
        as_table([]), {}, 0)
    assert six_n_warning(as_table(rows6)) == []


def test_the_first_window_is_centred_in_the_sizes_own_flops():
    """C = k(N)·r·N² with the catalog's k: a GPT whose small sizes cost 1.4x 6N gets a smaller centre."""
    budget, r = 1e11, 20.0
    measured = gpt_catalog(config()).expected_optimal_params(budget, r)
    assert gpt_catalog(config(flops_per_token="6N")).expected_optimal_params(budget, r) == math.sqrt(budget / (6 * r))
    assert measured < 0.95 * math.sqrt(budget / (6 * r))
    catalog = gpt_catalog(config())
    info = catalog.info(catalog.size_for(measured))
    assert measured == pytest.approx(math.sqrt(budget / (info.flops_per_token / info.params * r)), rel=1e-9)


# ------------------------------------------------------------------------------------------------ fit
THETA = np.log([TRUTH["E"], TRUTH["A"], TRUTH["B"]]).tolist() + [TRUTH["alpha"], TRUTH["beta"]]


def cost(N: np.ndarray) -> np.ndarray:
    """FLOPs per token of a made-up family: 3x 6N at N = 1e7, 1.5x at 1e9 (attention-like overhead)."""
    return 6 * N * (1 + (N / 1e8) ** -0.3)


def test_the_frontier_spends_each_sizes_own_flops_and_is_6n_for_a_constant_curve():
    C = np.array([1e18, 1e20, 1e22])
    theta = np.array(THETA)
    for constant in (FlopsCurve.constant(6.0), FlopsCurve.from_sizes(np.array([1e6, 1e8]), 6 * np.array([1e6, 1e8]))):
        for got, want in zip(frontier_per_size(theta, C, constant), frontier(theta, C, 6.0)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    sizes = np.geomspace(1e6, 1e10, 9)
    curve = FlopsCurve.from_sizes(sizes, cost(sizes))
    N, D, L = frontier_per_size(theta, C, curve)
    np.testing.assert_allclose(cost(N) * D, C, rtol=0.02)  # interpolated between the sizes: near the cost
    np.testing.assert_allclose(np.exp(curve.ln_per_token(np.log(N))) * D, C, rtol=1e-9)  # exactly the curve's
    for step in (0.99, 1.01):  # a minimum along the isoFLOP line
        n = N * step
        assert (law(n, C / np.exp(curve.ln_per_token(np.log(n)))) > L).all()
    shift = np.log(N / frontier(theta, C, 6.0)[0])  # costlier small sizes push N* down, most at small C
    assert (shift < -0.01).all() and shift[0] < -0.1
    draws = frontier_per_size(np.repeat(theta[None], 3, 0), C, curve)[0]
    np.testing.assert_allclose(draws, np.broadcast_to(N, (3, C.size)), rtol=1e-9)


def sweep_tables(budgets=(1e18, 1e19, 1e20, 1e21), seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """A runs table whose budgets are spent in ``cost`` FLOPs, and each run's metrics."""
    rng = np.random.default_rng(seed)
    rows, metrics = [], []
    for C in budgets:
        for i, N in enumerate(true_optimum(C) * np.geomspace(1 / 8, 8, 7)):
            D = C / cost(N)
            rid = f"C{C:.0e}_s{i}"
            rows.append({"run_id": rid, "budget": C, "size_param": "width", "size": i, "params": N,
                         "flops_per_token": cost(N), "flops_per_token_6n": 6 * N, "role": "sweep", "seed": 0,
                         "achieved_flops": C, "lr": 1e-3, "steps": 1, "batch_size": 1, "tokens_per_sample": 1,
                         "branch_of": "", "branch_step": 0})
            metrics.append({"status": "ok", "eval_loss": float(law(N, D) * np.exp(rng.normal(0, 0.005))),
                            "tokens": D, "flops": C})
    return pd.DataFrame(rows), metrics


def test_the_fit_and_recommendation_use_each_sizes_flops_and_old_tables_keep_one_k(tmp_path):
    from flops_fit.pipeline import fit_runs

    table, metrics = sweep_tables()
    for rid, m in zip(table["run_id"], metrics):
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "metrics.json").write_text(json.dumps(m))
    cfg = prepare_config({"model": {"class": "m:M", "size_param": "width"}, "dataset": {"target": "d:D"},
                          "loss": {"target": "l:L"}, "budgets": sorted(set(table["budget"])),
                          "target_budgets": [1e23], "fit": {"bootstrap": 0}})
    fit, _ = fit_runs(cfg, table, tmp_path)
    assert fit.parametric.flops_per_token is not None
    p = fit.predictions[0]
    curve = FlopsCurve.from_runs(table)
    assert p.D == pytest.approx(p.C / np.exp(curve.ln_per_token(np.log(p.N))), rel=1e-9)
    assert fit.parametric.tokens_at(p.C, p.N) == pytest.approx(p.D, rel=1e-9)  # the plots' isoFLOP lines
    for e in fit.isoflop.per_budget:
        assert e.D_opt * np.exp(curve.ln_per_token(np.log(e.N_opt))) == pytest.approx(e.C, rel=1e-9)

    old, _ = fit_runs(cfg, table.drop(columns="flops_per_token_6n"), tmp_path)  # a table from before the column
    k = old.parametric.flops_per_param_token
    assert old.parametric.flops_per_token is None
    assert old.predictions[0].D == pytest.approx(p.C / (k * old.predictions[0].N), rel=1e-9)
    assert old.parametric.tokens_at(p.C, old.predictions[0].N) == pytest.approx(old.predictions[0].D, rel=1e-9)
    assert abs(math.log(old.predictions[0].D / p.D)) > 0.05  # one k misplaces D* when the cost varies


def test_branches_take_each_sizes_batch_at_its_compute_optimal_budget_in_measured_flops():
    """With sweep.reuse: branches a size's batch is the law's at C_opt(N) = fpt(N)·r·N; it used 6N·r·N
    whatever the convention, so a ViT at 17x 6N got the batch of a budget 17x too small."""
    recipe = Recipe.from_config(config(reuse="branches", tokens_per_param=20, steps=None))
    params, measured = 10_000, 17 * 6.0 * 10_000
    assert recipe.batch_budget(params, 0.0) == 6.0 * 20 * params**2
    assert recipe.batch_budget(params, 0.0, measured) == pytest.approx(17 * 6.0 * 20 * params**2)
    batch_6n = recipe.batch_plan(params, 1e12, 1e6, 1)[0]
    batch_measured = recipe.batch_plan(params, 1e12, 1e6, 1, flops_per_token=measured)[0]
    assert batch_measured / batch_6n == pytest.approx(17 ** recipe.batch.flops_exponent, rel=0.02)
    # every run of a size still shares one warmup: r·N tokens' worth of steps, whatever fpt is
    assert recipe.warmup_steps(params, 64, 10, measured) == recipe.warmup_steps(params, 64, 10, 6.0 * params)
