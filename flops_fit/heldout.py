"""The held-out evaluation set: the same batches score every run, so losses are paired comparisons.

Either an explicit eval dataset, or a split of the training data: the *last* ``samples`` items of a
map-style dataset (training sees only the rest), or the *first* ``samples`` items of an iterable one
(training skips them). A user DataLoader is passed through untouched, so it cannot be split: it needs
an explicit eval dataset.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, Subset, default_collate

EVAL_BATCH = 128  # samples per eval batch: memory only, the loss is averaged over all of them


class SkipFirst(IterableDataset):
    """An iterable dataset without its first ``count`` items (they are the held-out set)."""

    def __init__(self, dataset: IterableDataset, count: int) -> None:
        self.dataset, self.count = dataset, count

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.dataset), self.count, None)


def split_train_eval(dataset: Any, eval_dataset: Any, samples: int) -> tuple[Any, list]:
    """Return (training data, list of eval batches) as described in the module docstring."""
    if eval_dataset is not None:
        return dataset, eval_batches(eval_dataset, samples)
    if isinstance(dataset, DataLoader):
        raise ValueError(
            "dataset is a DataLoader, which flops-fit passes through untouched and so cannot split into "
            "training and held-out parts. Set eval_dataset (config key eval_dataset.target, or "
            "find_optimal(eval_dataset=...)) to the data the eval loss should use."
        )
    if isinstance(dataset, IterableDataset):
        return SkipFirst(dataset, samples), eval_batches(dataset, samples)
    n = len(dataset)
    if n <= samples:
        raise ValueError(
            f"dataset has {n} samples, not more than the {samples} held out for evaluation "
            f"(eval_dataset.samples); lower eval_dataset.samples or give an eval_dataset"
        )
    return Subset(dataset, range(n - samples)), eval_batches(Subset(dataset, range(n - samples, n)), samples)


def eval_batches(data: Any, samples: int) -> list:
    """The first ``samples`` samples of ``data`` as collated batches (a DataLoader's own batches)."""
    if isinstance(data, DataLoader):
        batches, seen = [], 0
        for batch in data:
            batches.append(batch)
            seen += len(batch[1])
            if seen >= samples:
                break
        return batches
    items = itertools.islice(iter(data), samples) if isinstance(data, IterableDataset) else (
        data[i] for i in range(min(samples, len(data)))
    )
    items = list(items)
    return [default_collate(items[i : i + EVAL_BATCH]) for i in range(0, len(items), EVAL_BATCH)]


def first_sample(data: Any) -> Any:
    """One collated batch of size 1 (a DataLoader: its first batch), for shapes at plan time."""
    if isinstance(data, DataLoader):
        return next(iter(data))
    item = next(iter(data)) if isinstance(data, IterableDataset) else data[0]
    return default_collate([item])
