"""Held-out loss: the number the fit uses, on the same batches for every run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from flops_fit.training.device import DeviceSetup
from flops_fit.training.distributed import Ranks


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Sequence[Any], loss_fn: Callable, setup: DeviceSetup, ranks: Ranks = Ranks()
) -> float:
    """Token-weighted mean of ``loss_fn`` over ``batches`` of ``(inputs, targets, ...)``.

    Weighting by ``targets.numel()`` makes the result independent of how the eval set was cut into
    batches (the loss functions return per-batch means), and so of how they are spread over several
    processes: rank r scores batches r, r + world_size, ... and the sums are added over ranks, so every
    rank returns the same number.
    """
    if not batches:
        raise ValueError("the eval set is empty; give the dataset an eval split or a non-zero eval size")
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=setup.device)  # (loss x tokens, tokens)
    try:
        for batch in batches[ranks.rank :: ranks.world_size]:
            inputs, targets = setup.move(batch[0]), setup.move(batch[1])
            with setup.autocast():
                loss = loss_fn(model(inputs), targets)
            n = targets.numel()
            total[0] += loss.detach().double() * n
            total[1] += n
    finally:
        model.train(was_training)
    loss_sum, tokens = ranks.sum_(total).tolist()
    return loss_sum / tokens
