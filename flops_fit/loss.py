"""The loss interface: any callable ``loss_fn(predictions, targets) -> scalar``.

Checked before training with ``inspect.signature`` only (no probe call: the shapes of the model's
predictions are not known yet). Loss functions in the wild have many signatures, so the check is
deliberately minimal: callable, not a class, and callable with two positional arguments.
"""

from __future__ import annotations

import inspect
from typing import Any

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
