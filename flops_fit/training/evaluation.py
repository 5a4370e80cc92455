"""Held-out loss: the number the fit uses, on the same batches for every run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from flops_fit.training.device import DeviceSetup


@torch.no_grad()
def evaluate(model: nn.Module, batches: Sequence[Any], loss_fn: Callable, setup: DeviceSetup) -> float:
    """Token-weighted mean of ``loss_fn`` over ``batches`` of ``(inputs, targets, ...)``.

    Weighting by ``targets.numel()`` makes the result independent of how the eval set was cut into
    batches (the loss functions return per-batch means).
    """
    if not batches:
        raise ValueError("the eval set is empty; give the dataset an eval split or a non-zero eval size")
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=setup.device)
    tokens = 0
    try:
        for batch in batches:
            inputs, targets = setup.move(batch[0]), setup.move(batch[1])
            with setup.autocast():
                loss = loss_fn(model(inputs), targets)
            n = targets.numel()
            total += loss.detach().double() * n
            tokens += n
    finally:
        model.train(was_training)
    return float(total / tokens)
