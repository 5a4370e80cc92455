"""Tiny real models, data and settings shared by the training-engine tests (and their subprocesses)."""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset

from flops_fit.training.settings import default_settings

DIM = 8
#: the regression task every dataset here samples from: y = tanh(x @ TASK)
TASK = torch.randn(DIM, DIM, generator=torch.Generator().manual_seed(1234))


def settings(**overrides: object) -> dict:
    """Schema defaults on one CPU thread (deterministic and light on the shared machine), plus overrides."""
    return default_settings(**{"device": "cpu", "threads": 1, **overrides})


def mlp(seed: int = 0, hidden: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, hidden), nn.GELU(), nn.Linear(hidden, DIM))


class Regression(Dataset):
    """A learnable map-style regression set: y = tanh(x A); optionally slow to read (for kill tests)."""

    def __init__(self, n: int = 256, seed: int = 1, delay_s: float = 0.0) -> None:
        self.x = torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed))
        self.y = torch.tanh(self.x @ TASK)
        self.delay_s = delay_s

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.x[i], self.y[i]


class Stream(IterableDataset):
    """Endless fresh regression samples from a seeded generator."""

    def __init__(self, seed: int = 2, delay_s: float = 0.0) -> None:
        self.seed, self.delay_s = seed, delay_s

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        while True:
            if self.delay_s:
                time.sleep(self.delay_s)
            x = torch.randn(DIM, generator=g)
            yield x, torch.tanh(x @ TASK)


def eval_batches(n_batches: int = 2, batch: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = Regression(n=n_batches * batch, seed=99)
    return [(data.x[i : i + batch], data.y[i : i + batch]) for i in range(0, n_batches * batch, batch)]


def run_row(model: nn.Module, **overrides: object) -> dict:
    """A runs-table row for ``model`` trained on samples with DIM targets each (6N FLOPs per token)."""
    params = sum(p.numel() for p in model.parameters())
    row = {
        "run_id": "C1e9_hidden32", "budget": 1e9, "size_param": "hidden", "size": 32,
        "params": params, "params_total": params, "flops_per_token": 6.0 * params, "flops_convention": "6N",
        "tokens_per_sample": DIM, "batch_size": 8, "steps": 40, "lr": 1e-2, "warmup_steps": 4, "seed": 0,
    }
    row.update(overrides)
    row["tokens"] = row["steps"] * row["batch_size"] * row["tokens_per_sample"]
    row["achieved_flops"] = row["tokens"] * row["flops_per_token"]
    row.setdefault("planned_flops", row["achieved_flops"])
    return row


loss_fn = F.mse_loss
