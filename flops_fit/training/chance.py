"""Chance level for any loss: the held-out loss of the best prediction that ignores its input.

A run "did not learn" when its eval loss stays at chance (:mod:`flops_fit.learning`). ln K is chance
for K balanced classes only; a user's loss, targets and class balance are unknown in general. What is
known is the loss function itself: the best *constant* prediction, fitted to the eval targets, is
chance for that loss (the label marginal's entropy for cross-entropy, the targets' variance for MSE,
a position-wise unigram model for a language model). A model that ties it has learned nothing about
its inputs, whatever it started from: a ViT initialised above ln 10 that settles at ln 10 fell 4 %
from its start and was fitted until this number stood beside it.

The constant is fitted by L-BFGS from the model's mean initial output; cross-entropy and MSE are
convex in it, so a few dozen iterations reach the optimum. It is fitted on the eval set itself, so it
is, if anything, slightly below the true chance level: a run is never called dead by an optimistic
reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from flops_fit.loss import model_predictions
from flops_fit.training.device import DeviceSetup

#: most prediction elements held at once (the constant expanded to the batches): 64 MB in fp32. A large
#: LM's (B, T, V) logits pass it after a few samples; the level is then fitted on those samples.
MAX_ELEMENTS = 1 << 24


def chance_loss(
    model: nn.Module, batches: Sequence[Any], loss_fn: Callable, setup: DeviceSetup, max_iter: int = 50
) -> float | None:
    """Eval loss of the best input-independent prediction, weighted by targets as ``evaluate`` weighs them.

    None when it cannot be told: the model's output is not a tensor (or a mapping with ``logits``), its
    shape differs between batches, or the loss fails or is not finite on a constant prediction.
    """
    if not batches:
        return None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first = model_predictions(model(setup.move(batches[0][0])))
    finally:
        model.train(was_training)
    if not isinstance(first, torch.Tensor) or first.dim() == 0 or not first.is_floating_point():
        return None
    per_sample = first.shape[1:]
    targets, elements = [], 0
    for batch in batches:
        target = setup.move(batch[1])
        n = len(target)
        elements += n * per_sample.numel()
        if targets and elements > MAX_ELEMENTS:
            break
        targets.append(target)
    level = first.detach().float().mean(0).clone().requires_grad_(True)

    def mean_loss() -> torch.Tensor:
        total, count = 0.0, 0
        for target in targets:
            prediction = level.expand(len(target), *per_sample)
            total = total + loss_fn(prediction, target).float() * target.numel()
            count += target.numel()
        return total / count

    optimizer = torch.optim.LBFGS([level], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = mean_loss()
        value.backward()
        return value

    try:
        with torch.enable_grad():
            optimizer.step(closure)
        with torch.no_grad():
            value = float(mean_loss())
    except Exception:  # noqa: BLE001 - best effort: a loss that cannot score a constant has no chance level
        return None
    return value if value == value and abs(value) != float("inf") else None
