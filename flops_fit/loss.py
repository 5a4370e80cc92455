"""The loss interface: any callable ``loss_fn(predictions, targets) -> scalar``.

Checked before training with ``inspect.signature`` only (no probe call: the shapes of the model's
predictions are not known yet). Loss functions in the wild have many signatures, so the check is
deliberately minimal: callable, not a class, and callable with two positional arguments. How the
loss is then called (model outputs with ``logits``, a language model's ``(B, T, V)`` logits) is
:class:`AdaptedLoss`; the plan's smoke test (:mod:`flops_fit.smoke`) tries it on one real batch.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

EXPECTED = "loss_fn(predictions, targets) -> scalar"


def validate_loss_fn(loss_fn: Any) -> None:
    """Raise ``TypeError`` unless ``loss_fn`` can be called as ``loss_fn(predictions, targets)``.

    A class is rejected (``nn.CrossEntropyLoss`` instead of ``nn.CrossEntropyLoss()``: calling the
    class would silently build a new loss module from the predictions). An ``nn.Module`` instance
    is judged by its ``forward``, since its ``__call__`` accepts anything. Callables whose
    signature cannot be inspected (some builtins and C extensions) are accepted; a mismatch then
    surfaces at the first training step.
    """
    if loss_fn is None:
        raise TypeError(
            "loss_fn is required. Pass a callable that computes loss from model outputs and targets.\n"
            "Examples:\n"
            "  loss_fn=torch.nn.CrossEntropyLoss()\n"
            "  loss_fn=lambda logits, labels: F.cross_entropy(logits, labels)\n"
            "  loss_fn=my_custom_loss  # any callable(predictions, targets) -> scalar"
        )
    if inspect.isclass(loss_fn):
        raise TypeError(
            f"loss_fn appears to be a class, not an instance. "
            f"Did you mean loss_fn={loss_fn.__name__}() (with parentheses)?"
        )
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable, got {type(loss_fn).__name__}. "
            "Pass a function, nn.Module, or any object with a __call__ method."
        )
    judged = loss_fn.forward if isinstance(loss_fn, nn.Module) else loss_fn
    try:
        params = inspect.signature(judged).parameters.values()
    except (TypeError, ValueError):
        return  # uninspectable (builtin / C extension): trust it, training will tell
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    if len(positional) < 2 and not has_var_positional:
        raise TypeError(
            f"loss_fn must accept at least 2 positional arguments (predictions, targets), but "
            f"{loss_name(loss_fn)} accepts {len(positional)}. Expected signature: {EXPECTED}"
        )
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    required = [p.name for p in params if p.default is p.empty and p.kind not in variadic]
    if len(required) > 2:
        raise TypeError(
            f"loss_fn {loss_name(loss_fn)} requires {len(required)} arguments ({', '.join(required)}), but "
            f"flops_fit calls it with two. Expected signature: {EXPECTED}; give the extra arguments "
            "defaults or bind them with functools.partial."
        )


def loss_name(loss_fn: Any) -> str:
    """A human-readable name: the function's name, or the type of a loss object."""
    name = getattr(loss_fn, "__name__", None)
    return name if isinstance(name, str) else type(loss_fn).__name__


class AdaptedLoss:
    """The user's loss as training and evaluation call it: ``loss(model(inputs), targets)``.

    Two adaptations let standard losses and models work as written:

    * **Model outputs with logits.** A mapping or object with ``logits`` (a ``transformers``
      ``ModelOutput``) stands for its ``logits``. Any other output is passed to the loss unchanged.
    * **Sequence classification.** Predictions ``(B, T, V)`` with integer targets ``(B, T)`` (one
      class per token: a language model's logits) are flattened to ``(B·T, V)`` and ``(B·T,)``, the
      shapes ``nn.CrossEntropyLoss`` expects; given the unflattened shapes it reads T as the class
      dimension and fails, or silently computes nonsense when T equals V. Any loss that averages over
      tokens gives the same value either way. Said once in the log, not every step.
    """

    def __init__(self, loss_fn: Any, log: logging.Logger | None = None) -> None:
        self.loss_fn = loss_fn
        self.log = log or logging.getLogger(__name__)
        self._said_flatten = False

    def prepare(self, outputs: Any, targets: Any) -> tuple[Any, Any]:
        """The ``(predictions, targets)`` the user's loss receives."""
        predictions = model_predictions(outputs)
        if _is_sequence_classification(predictions, targets):
            if not self._said_flatten:
                self.log.info(
                    "loss: predictions %s with integer targets %s are passed to %s as %s and %s "
                    "(one row per target; see docs/architecture.md)",
                    tuple(predictions.shape), tuple(targets.shape), loss_name(self.loss_fn),
                    (targets.numel(), predictions.shape[-1]), (targets.numel(),),
                )
                self._said_flatten = True
            return predictions.reshape(-1, predictions.shape[-1]), targets.reshape(-1)
        return predictions, targets

    def __call__(self, outputs: Any, targets: Any) -> Any:
        return self.loss_fn(*self.prepare(outputs, targets))


def model_predictions(outputs: Any) -> Any:
    """A model's predictions: its ``logits`` when it returns a mapping or object holding them, else the output."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and "logits" in outputs:
        return outputs["logits"]
    logits = getattr(outputs, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else outputs


def _is_sequence_classification(predictions: Any, targets: Any) -> bool:
    """``(B, T, ..., V)`` predictions and integer ``(B, T, ...)`` targets: one class index per position."""
    return (
        isinstance(predictions, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and targets.dim() >= 2
        and not (targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool)
        and predictions.dim() == targets.dim() + 1
        and predictions.shape[:-1] == targets.shape
    )
