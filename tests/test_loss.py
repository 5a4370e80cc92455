"""validate_loss_fn: the loss interface of docs/interfaces.md, message by message."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from flops_fit.loss import loss_name, validate_loss_fn


def my_loss(logits, labels):
    return F.cross_entropy(logits, labels)


class WeightedLoss(nn.Module):
    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, predictions, targets):
        return self.alpha * F.cross_entropy(predictions, targets)


class OneArgModule(nn.Module):
    def forward(self, predictions):
        return predictions.mean()


@pytest.mark.parametrize(
    "loss_fn",
    [
        nn.CrossEntropyLoss(),
        WeightedLoss(alpha=0.3),
        my_loss,
        lambda logits, labels: F.cross_entropy(logits, labels),
        lambda *tensors: F.cross_entropy(*tensors),
        lambda predictions, targets, weight=None: F.cross_entropy(predictions, targets, weight=weight),
        functools.partial(F.cross_entropy, label_smoothing=0.1),
        F.cross_entropy,
    ],
)
def test_valid_losses_are_accepted_and_compute_a_scalar(loss_fn):
    validate_loss_fn(loss_fn)
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert loss_fn(logits, labels).ndim == 0


def test_none_says_required_with_examples():
    with pytest.raises(TypeError) as info:
        validate_loss_fn(None)
    message = str(info.value)
    assert message.startswith("loss_fn is required.")
    assert "loss_fn=torch.nn.CrossEntropyLoss()" in message
    assert "callable(predictions, targets) -> scalar" in message


def test_class_instead_of_instance_suggests_parentheses():
    with pytest.raises(TypeError, match=r"appears to be a class, not an instance") as info:
        validate_loss_fn(nn.CrossEntropyLoss)
    assert "Did you mean loss_fn=CrossEntropyLoss() (with parentheses)?" in str(info.value)


def test_a_user_loss_class_is_rejected_too():
    with pytest.raises(TypeError, match=r"loss_fn=WeightedLoss\(\)"):
        validate_loss_fn(WeightedLoss)


def test_not_callable_names_the_type():
    with pytest.raises(TypeError, match=r"^loss_fn must be callable, got int\."):
        validate_loss_fn(42)


@pytest.mark.parametrize("loss_fn, count", [(lambda: 0.0, 0), (lambda predictions: 0.0, 1), (OneArgModule(), 1)])
def test_fewer_than_two_positional_parameters_states_the_expected_signature(loss_fn, count):
    with pytest.raises(TypeError) as info:
        validate_loss_fn(loss_fn)
    message = str(info.value)
    assert f"accepts {count}" in message
    assert "Expected signature: loss_fn(predictions, targets) -> scalar" in message


def test_module_instance_is_judged_by_forward_not_call():
    # nn.Module.__call__ takes (*args, **kwargs): only forward tells the truth
    with pytest.raises(TypeError, match="OneArgModule accepts 1"):
        validate_loss_fn(OneArgModule())


def test_keyword_only_targets_are_rejected():
    def loss(predictions, *, targets):
        return predictions.sum()

    with pytest.raises(TypeError, match="accepts 1"):
        validate_loss_fn(loss)


def test_a_third_required_argument_is_rejected_with_the_fix():
    def weighted(predictions, targets, weight):
        return (weight * (predictions - targets) ** 2).mean()

    with pytest.raises(TypeError) as info:
        validate_loss_fn(weighted)
    assert "requires 3 arguments (predictions, targets, weight)" in str(info.value)
    assert "functools.partial" in str(info.value)
    validate_loss_fn(functools.partial(weighted, weight=2.0))


def test_uninspectable_builtins_are_accepted():
    # inspect.signature raises ValueError on these: the check is skipped, training will tell
    for builtin in (max, torch.add):
        with pytest.raises(ValueError):
            inspect.signature(builtin)
        validate_loss_fn(builtin)


def test_loss_name():
    assert loss_name(my_loss) == "my_loss"
    assert loss_name(nn.CrossEntropyLoss()) == "CrossEntropyLoss"
