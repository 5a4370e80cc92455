"""The held-out evaluation set: the same batches score every run, so losses are paired comparisons.

Either an explicit eval dataset, or a split of the training data: the *last* ``samples`` items of a
map-style dataset (training sees only the rest), or the *first* ``samples`` items of an iterable one
(training skips them). A user DataLoader is passed through untouched, so it cannot be split: it needs
an explicit eval dataset.

Samples may be ``(inputs, targets)`` pairs or mappings (:mod:`flops_fit.batch_format`); the batches
built here are always ``(inputs, targets)`` pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_map
from torch.utils.data import DataLoader, IterableDataset, Subset, default_collate

from flops_fit.batch_format import BatchFormat

EVAL_BATCH = 128  # samples per eval batch: memory only, the loss is averaged over all of them


class SkipFirst(IterableDataset):
    """An iterable dataset without its first ``count`` items (they are the held-out set)."""

    def __init__(self, dataset: IterableDataset, count: int) -> None:
        self.dataset, self.count = dataset, count

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.dataset), self.count, None)


def split_train_eval(
    dataset: Any, eval_dataset: Any, samples: int, batch_format: BatchFormat = BatchFormat()
) -> tuple[Any, list]:
    """Return (training data, list of eval batches) as described in the module docstring."""
    if eval_dataset is not None:
        return dataset, eval_batches(eval_dataset, samples, batch_format)
    if isinstance(dataset, DataLoader):
        raise ValueError(
            "dataset is a DataLoader, which flops-fit passes through untouched and so cannot split into "
            "training and held-out parts. Set eval_dataset (config key eval_dataset.target, or "
            "find_optimal(eval_dataset=...)) to the data the eval loss should use."
        )
    if isinstance(dataset, IterableDataset):
        return SkipFirst(dataset, samples), eval_batches(dataset, samples, batch_format)
    n = len(dataset)
    if n <= samples:
        raise ValueError(
            f"dataset has {n} samples, not more than the {samples} held out for evaluation "
            f"(eval_dataset.samples); lower eval_dataset.samples or give an eval_dataset"
        )
    held_out = Subset(dataset, range(n - samples, n))
    return Subset(dataset, range(n - samples)), eval_batches(held_out, samples, batch_format)


def eval_batches(data: Any, samples: int, batch_format: BatchFormat = BatchFormat()) -> list[tuple[Any, Any]]:
    """The first ``samples`` samples of ``data`` as collated ``(inputs, targets)`` batches (a DataLoader's own)."""
    if isinstance(data, DataLoader):
        batches, seen = [], 0
        for batch in data:
            batches.append(batch_format(batch))
            seen += len(batches[-1][1])
            if seen >= samples:
                break
        return batches
    items = list(_items(data, samples))
    return [batch_format(default_collate(items[i : i + EVAL_BATCH])) for i in range(0, len(items), EVAL_BATCH)]


def first_sample(data: Any, batch_format: BatchFormat = BatchFormat(), count: int = 1) -> tuple[Any, Any]:
    """``(inputs, targets)`` of the first ``count`` samples, collated (a DataLoader: its first batch, cut
    to ``count``), for shapes and the smoke test at plan time."""
    if isinstance(data, DataLoader):
        inputs, targets = batch_format(next(iter(data)))
        return tree_map(lambda t: t[:count] if isinstance(t, torch.Tensor) else t, (inputs, targets))
    return batch_format(default_collate(list(_items(data, count))))


def _items(data: Any, count: int) -> Iterator[Any]:
    """The first ``count`` samples of an iterable or map-style dataset."""
    if isinstance(data, IterableDataset):
        return itertools.islice(iter(data), count)
    return (data[i] for i in range(min(count, len(data))))
