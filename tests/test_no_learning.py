"""Runs that did not learn (issue 25, item 2): a run whose eval loss stays at its initial value (or
chance level) is marked ``no_learning``, kept out of the fit and the lr calibration, and named with
its likely cause."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from flops_fit import calibration, learning
from flops_fit.config import prepare_config
from flops_fit.pipeline import TooFewRuns, collect_results, fit_runs
from flops_fit.report_page import run_outcomes
from flops_fit.loss import AdaptedLoss
from flops_fit.training import run_training
from flops_fit.training.chance import chance_loss
from flops_fit.training.device import setup_device
from flops_fit.training.evaluation import evaluate
from training_support import DIM, Regression, eval_batches, loss_fn, mlp, run_row, settings


def _train(runs_dir, run_id, lr, **setting_overrides):
    model = mlp()
    row = run_row(model, run_id=run_id, steps=30, lr=lr)
    return run_training(
        row, model=model, train_data=Regression(), eval_data=eval_batches(), loss_fn=loss_fn,
        settings=settings(**setting_overrides), out_dir=runs_dir / run_id, checkpoint_dir=runs_dir / f"ckpt_{run_id}",
    ), row


def test_the_eval_loss_at_initialization_is_recorded_and_kept_by_a_resume(tmp_path):
    untrained = evaluate(mlp(), eval_batches(), loss_fn, setup_device("cpu"))
    keep = {"checkpoint": {"every_steps": 5, "keep": True}}
    first, _ = _train(tmp_path, "run", 1e-2, **keep)
    assert first["initial_eval_loss"] == pytest.approx(untrained, rel=1e-6)
    again, _ = _train(tmp_path, "run", 1e-2, **keep)  # resumes at step 25: no eval at initialization there
    assert again["resumed_from_step"] == 25
    assert again["initial_eval_loss"] == pytest.approx(untrained, rel=1e-6)


def test_a_run_whose_loss_never_moves_is_left_out_of_the_fit_and_named(tmp_path):
    """Real training: the same model at a useful lr learns, at lr 1e-9 its loss stays put (finished ``ok``)."""
    learned, row_a = _train(tmp_path, "C1e9_hidden32", 1e-2)
    flat, row_b = _train(tmp_path, "C1e9_hidden32_flat", 1e-9)
    assert learned["status"] == flat["status"] == "ok"
    runs = pd.DataFrame([{**row_a, "role": "sweep"}, {**row_b, "role": "sweep", "size": 8, "params": 10}])
    results, warnings = collect_results(runs, tmp_path)
    assert list(results["run_id"]) == ["C1e9_hidden32"]  # the learning run is kept
    (warning,) = warnings
    assert "C1e9_hidden32_flat excluded from the fit" in warning and "no_learning" in warning
    assert "initial eval loss" in warning
    assert "too small a model" in warning  # the only size that learned is larger
    outcomes = run_outcomes(runs, tmp_path)
    assert list(outcomes["status"]) == ["ok", "no_learning"]


def _write(runs_dir, run_id, **metrics):
    (runs_dir / run_id).mkdir(parents=True)
    (runs_dir / run_id / "metrics.json").write_text(json.dumps({"status": "ok", "tokens": 1000, "flops": 1e9,
                                                                  **metrics}))


def test_chance_level_and_older_metrics_without_an_initial_loss(tmp_path):
    ln10 = math.log(10)
    # the user's ViT at embed_dim 2: initialized above chance, settled at chance (2.3024 = ln 10)
    assert learning.no_learning({"status": "ok", "eval_loss": 2.3024, "initial_eval_loss": 2.45}, chance=ln10)
    assert learning.no_learning({"status": "ok", "eval_loss": 2.3024, "initial_eval_loss": 2.45}) is None
    # slow but real learning (3 % below its start) is kept; a diverged run is not this check's business
    assert learning.no_learning({"status": "ok", "eval_loss": 2.30, "initial_eval_loss": 2.38}) is None
    assert learning.no_learning({"status": "diverged", "eval_loss": None, "initial_eval_loss": 2.3}) is None
    # an older metrics.json: the first step's train loss of curve.tsv stands for the initial loss
    _write(tmp_path, "old", eval_loss=1.0)
    (tmp_path / "old" / "curve.tsv").write_text("step\ttokens\tlr\ttrain_loss\teval_loss\n1\t8\t0.01\t1.005\t\n")
    assert "first-step train loss" in learning.no_learning(json.loads((tmp_path / "old" / "metrics.json").read_text()),
                                                           tmp_path / "old")
    _write(tmp_path, "bare", eval_loss=1.0)  # neither record: nothing to compare, so it is kept
    assert learning.no_learning({"status": "ok", "eval_loss": 1.0}, tmp_path / "bare") is None


def test_an_lr_too_high_for_the_larger_sizes_is_named_as_the_cause(tmp_path):
    runs = pd.DataFrame({"run_id": ["s", "m", "l"], "budget": [1e9] * 3, "size": [8, 16, 32],
                         "size_param": ["d"] * 3, "params": [100, 200, 400], "lr": [0.01] * 3, "role": ["sweep"] * 3})
    for run_id, loss in zip(runs["run_id"], [1.5, 2.301, 2.302]):
        _write(tmp_path, run_id, eval_loss=loss, initial_eval_loss=2.31)
    results, warnings = collect_results(runs, tmp_path)
    assert list(results["run_id"]) == ["s"]
    assert len(warnings) == 2 and all("too high" in w for w in warnings)
    assert "m excluded" in warnings[0] and "l excluded" in warnings[1]


def _calibration_table():
    rows = []
    for size, params in ((2, 100), (8, 400), (32, 1600)):
        for factor in (0.25, 0.5, 1, 2, 4):
            rows.append({"run_id": f"d{size}_lrx{factor:g}", "size": size, "size_param": "embed_dim", "params": params,
                         "lr": 1e-3 * factor})
    return pd.DataFrame(rows)


def test_the_lr_calibration_gives_no_best_lr_to_a_size_whose_every_lr_is_flat():
    table = _calibration_table()
    rng = np.random.default_rng(0)
    losses, flat = {}, {}
    for r in table.itertuples():
        if r.size == 2:  # the flat losses, 2.3024 to 2.3048, at every lr
            losses[r.run_id] = 2.3024 + 0.0024 * rng.random()
            flat[r.run_id] = "its eval loss stayed within 2% of its initial eval loss (no learning)"
        else:
            losses[r.run_id] = 1.0 + (math.log(r.lr) - math.log(1e-3 * r.size ** -0.3)) ** 2
    law = calibration.fit_lr_law(table, losses, [-1.0, 0.0], flat)
    assert [p["size"] for p in law["per_size"]] == [8, 32]
    assert any("embed_dim=2" in w and "did not learn" in w and "too small" in w and "no best lr" in w
               for w in law["warnings"])
    # a flat run at the grid's top is named as an lr too high and left out of its size's best lr
    losses["d8_lrx4"], flat["d8_lrx4"] = 2.31, "flat"
    law = calibration.fit_lr_law(table, losses, [-1.0, 0.0], flat)
    assert any("embed_dim=8" in w and "too high" in w for w in law["warnings"])
    # no run learned at all: the calibration says so instead of handing out a best lr
    everything = {r: "flat" for r in table["run_id"]}
    with pytest.raises(ValueError, match="no calibration run learned"):
        calibration.fit_lr_law(table, {r: 2.3030 for r in table["run_id"]}, [-1.0, 0.0], everything)


# -- chance level measured for any loss: the best constant prediction ------------------------------

class NoiseLabels(torch.utils.data.Dataset):
    """Labels drawn independently of the inputs (3 classes at 60/30/10 %): nothing to learn but the marginal."""

    def __init__(self, n: int = 512, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = 4 * torch.randn(n, DIM, generator=g)  # large inputs: a fresh net starts far above chance
        self.y = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), n, replacement=True, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def _classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(DIM, 32), torch.nn.GELU(), torch.nn.Linear(32, 3))


def test_chance_is_the_best_constant_prediction_under_the_users_loss():
    setup = setup_device("cpu")
    data = NoiseLabels(seed=5)
    batches = [(data.x[i:i + 128], data.y[i:i + 128]) for i in range(0, 512, 128)]
    ce = AdaptedLoss(torch.nn.CrossEntropyLoss())
    p = torch.bincount(data.y, minlength=3).double() / len(data.y)
    assert chance_loss(_classifier(), batches, ce, setup) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-4)
    regression = eval_batches()  # MSE: chance is the variance of the targets about their mean
    y = torch.cat([b[1] for b in regression])
    assert chance_loss(mlp(), regression, loss_fn, setup) == pytest.approx(float(y.var(0, unbiased=False).mean()), rel=1e-3)
    # a language model's (B, T, V) logits against (B, T) tokens: a position-wise unigram, at most ln V
    tokens = torch.randint(0, 4, (8, 5), generator=torch.Generator().manual_seed(0)) ** 2 % 7  # skewed over 7
    lm = torch.nn.Sequential(torch.nn.Embedding(7, 8), torch.nn.Linear(8, 7))
    level = chance_loss(lm, [(tokens, tokens)], AdaptedLoss(torch.nn.CrossEntropyLoss()), setup)
    assert level < math.log(7) - 0.5
    # an output chance cannot be told for (a tuple without logits): None, and nothing else breaks
    assert chance_loss(torch.nn.Identity(), [((torch.zeros(2), torch.ones(2)), torch.zeros(2))], ce, setup) is None
    # a loss that reads more than a tensor (it would fail on a constant prediction): None, not an error
    assert chance_loss(_classifier(), batches, lambda p, t: p.logits.mean(), setup) is None


def test_a_run_that_only_learns_the_label_marginal_is_no_learning(tmp_path):
    """Real training on labels independent of the inputs: the eval loss falls far from its start (the
    initial-loss test passes it) but settles at chance, which each run now measures and checks."""
    data, held_out = NoiseLabels(seed=0), NoiseLabels(seed=1)
    model = _classifier()
    row = run_row(model, run_id="C1e9_hidden32", steps=60, lr=1e-2, tokens_per_sample=1, batch_size=32)
    batches = [(held_out.x[i:i + 128], held_out.y[i:i + 128]) for i in range(0, 512, 128)]
    metrics = run_training(row, model=model, train_data=data, eval_data=batches,
                           loss_fn=torch.nn.CrossEntropyLoss(), settings=settings(),
                           out_dir=tmp_path / "run", checkpoint_dir=tmp_path / "ckpt")
    assert metrics["status"] == "ok"
    assert metrics["eval_loss"] < 0.9 * metrics["initial_eval_loss"]  # it moved, so the old test kept it
    assert metrics["chance_eval_loss"] == pytest.approx(0.9, abs=0.1)  # 60/30/10 %: entropy 0.90 nats
    reason = learning.no_learning(metrics, tmp_path / "run")
    assert reason and "chance level (best constant prediction)" in reason
    assert learning.no_learning({**metrics, "chance_eval_loss": None}, tmp_path / "run") is None
    given = learning.no_learning({**metrics, "chance_eval_loss": None}, tmp_path / "run", chance=metrics["eval_loss"])
    assert "fit.chance_loss" in given  # a chance level in the config stands in for the measured one


def test_a_sweep_left_with_too_few_runs_says_which_did_not_learn(tmp_path):
    """The fitter's own check said only "3 row(s); the parametric fit needs at least 6 runs"."""
    sizes = [2, 3, 4, 6, 8, 12, 17, 23]
    runs = pd.DataFrame({"run_id": [f"C1e9_d{s}" for s in sizes], "budget": [1e9] * 8, "size": sizes,
                         "size_param": ["embed_dim"] * 8, "params": [50 * s * s for s in sizes], "lr": [0.01] * 8,
                         "role": ["sweep"] * 8, "flops_per_token": [1e3] * 8})
    for run_id, loss in zip(runs["run_id"], [2.31, 2.30, 1.9, 1.8, 2.0, 2.30, 2.31, 2.31]):
        _write(tmp_path, run_id, eval_loss=loss, initial_eval_loss=2.5, chance_eval_loss=2.29)
    config = prepare_config({"model": {"class": "m:M", "size_param": "embed_dim"}, "dataset": {"target": "d:D"},
                             "loss": {"target": "l:L"}, "budgets": [1e9]})
    with pytest.raises(TooFewRuns) as raised:
        fit_runs(config, runs, tmp_path)
    message = str(raised.value)
    assert "only 3 of 8 sweep runs can be fitted" in message and "5 did not learn" in message
    assert "C1e9_d2 excluded" in message and "Raise the budgets" in message


def test_the_report_judges_runs_against_the_configured_chance_level_as_the_fit_does(tmp_path):
    runs = pd.DataFrame({"run_id": ["a", "b"], "budget": [1e9] * 2, "size": [8, 16], "size_param": ["d"] * 2,
                         "params": [100, 200], "lr": [0.01] * 2, "role": ["sweep"] * 2})
    _write(tmp_path, "a", eval_loss=2.28, initial_eval_loss=2.5)  # fell 9 % from its start, to within 2 % of ln 10
    _write(tmp_path, "b", eval_loss=1.5, initial_eval_loss=2.5)
    assert list(run_outcomes(runs, tmp_path)["status"]) == ["ok", "ok"]
    assert list(run_outcomes(runs, tmp_path, chance=math.log(10))["status"]) == ["no_learning", "ok"]
    results, _ = collect_results(runs, tmp_path, math.log(10))
    assert list(results["run_id"]) == ["b"]
