"""The plan's smoke test: a model, data and loss that do not fit together stop the sweep before training."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn as nn

import flops_fit
from flops_fit import pipeline
from flops_fit.config import prepare_config
from flops_fit.errors import ConfigError
from flops_fit.examples.gpt import GPT
from lm_support import GPT_KWARGS, DictTokens, HFStyleLM

SIZES = [8, 16, 24, 32]


class TupleLM(GPT):
    """Returns (logits, hidden): a tuple without ``logits``."""

    def forward(self, idx):
        return super().forward(idx), None


class Regressor(nn.Module):
    """Predicts (B, 1) for (B,) targets: MSE would broadcast to (B, B) without an error."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, x):
        return self.net(x)


def regression_data(n: int = 600) -> torch.utils.data.TensorDataset:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return torch.utils.data.TensorDataset(x, x.sum(1))


def plan(model_cls, dataset, loss_fn, kwargs=GPT_KWARGS):
    config = prepare_config({
        "model": {"class": "x:y", "size_param": "d_model" if model_cls is not Regressor else "width",
                  "sizes": SIZES, "kwargs": kwargs},
        "dataset": {"target": "x"}, "eval_dataset": {"samples": 64}, "loss": {"target": "x"}, "budgets": [1e9],
    })
    return pipeline.plan(config, model_cls, dataset, None, loss_fn)


def test_cross_entropy_on_dict_samples_and_model_output_passes():
    table, warnings = plan(HFStyleLM, DictTokens(256), nn.CrossEntropyLoss())
    assert len(table) == 4 and not any("smoke" in w for w in warnings)


@pytest.mark.parametrize(
    "model_cls, dataset, loss_fn, kwargs, message",
    [
        (GPT, DictTokens(256), nn.CrossEntropyLoss(reduction="none"), GPT_KWARGS,
         r"loss CrossEntropyLoss returned a tensor of shape \(16,\), not a scalar; .*reduction: mean"),
        (TupleLM, DictTokens(256), nn.CrossEntropyLoss(), GPT_KWARGS,
         r"loss CrossEntropyLoss fails on TupleLM\(d_model=8\)'s predictions \(tuple\).*"
         r"The model returns a tuple without `logits`: return a tensor from forward"),
        (Regressor, regression_data(), nn.MSELoss(), {},
         r"the model's predictions \(float32 tensor of shape \(2, 1\)\) and the targets "
         r"\(float32 tensor of shape \(2,\)\) broadcast to \(2, 2\).*squeeze\(-1\)"),
        (GPT, DictTokens(256), nn.CrossEntropyLoss(), {**GPT_KWARGS, "block_size": 4},
         r"GPT\(d_model=8\) fails on a batch of the data's inputs \(int64 tensor of shape \(2, 8\)\): "
         r"ValueError: sequence length 8 exceeds block_size=4"),
        (Regressor, regression_data(), lambda p, t: ((p.squeeze(-1) - t) ** 2).mean().item(), {},
         r"loss <lambda> returned a float, not a tensor"),
        (GPT, DictTokens(256), lambda p, t: (p.argmax(-1) == t).float().mean(), GPT_KWARGS,
         r"loss <lambda> returned a value without a gradient"),
    ],
    ids=["non-scalar", "tuple-output", "broadcast", "model-fails", "python-float", "no-gradient"],
)
def test_a_misfit_is_a_config_error_naming_problem_and_fix(model_cls, dataset, loss_fn, kwargs, message):
    with pytest.raises(ConfigError, match="smoke test: " + message):
        plan(model_cls, dataset, loss_fn, kwargs)


def test_a_users_loss_that_may_reshape_gets_a_warning_about_broadcasting():
    _, warnings = plan(Regressor, regression_data(), lambda p, t: ((p.squeeze(-1) - t) ** 2).mean(), {})
    assert any("broadcast to (2, 2)" in w and w.endswith("unless loss <lambda> reshapes them itself") for w in warnings)


def test_unshifted_labels_are_warned_about():
    class CopyTokens(DictTokens):
        def __getitem__(self, i):
            row = super().__getitem__(i)
            return {**row, "labels": row["input_ids"]}

    _, warnings = plan(GPT, CopyTokens(256), nn.CrossEntropyLoss())
    assert any(w.startswith("the targets equal the inputs") for w in warnings)


def test_find_optimal_stops_before_training(tmp_path):
    call = functools.partial(
        flops_fit.find_optimal, GPT, "d_model", model_kwargs=GPT_KWARGS, dataset=DictTokens(256),
        compute_budgets=[1e9], sizes=SIZES, eval_samples=64, output_dir=tmp_path / "out",
    )
    with pytest.raises(ConfigError, match="not a scalar"):
        call(loss_fn=nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(ConfigError, match=r"keys \['input_ids', 'attention_mask', 'labels'\], without 'target'"):
        call(loss_fn=nn.CrossEntropyLoss(), targets_key="target")
    assert not (tmp_path / "out").exists()
