"""The training data as an endless, resumable stream of micro-batches.

* A map-style ``Dataset`` is batched here, ``batch_size`` samples per batch, reshuffled every epoch
  by a generator seeded from (seed, epoch) and with incomplete batches dropped. The position is
  arithmetic, so resuming at batch K reads nothing before it.
* A ``DataLoader`` (passed through) or an ``IterableDataset`` (batched ``batch_size`` samples at a
  time) is re-iterated when it runs out; resuming replays and discards the K batches before the
  position, which is exact for any data that is deterministic given the seed.

With several training processes every rank walks the same global stream (same seed, same position)
and gets its own slice of each batch (:meth:`Ranks.bounds`). A map-style dataset's rank reads only its
own samples; a DataLoader or IterableDataset cannot be indexed, so every rank reads each whole batch
and keeps its slice (exact and resumable, at the cost of reading the data once per process).

Every batch is handed out as ``(inputs, targets)``, whether the data yields pairs or mappings
(:class:`~flops_fit.batch_format.BatchFormat`). A sized, indexable dataset that is not a torch
``Dataset`` subclass (a Hugging Face dataset after ``.with_format("torch")``) is map-style here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from flops_fit.batch_format import BatchFormat
from flops_fit.data import wrap_dataset
from flops_fit.training.distributed import Ranks


class _EpochBatchSampler(Sampler[list[int]]):
    """Shuffled full batches of indices from batch ``start`` on, epoch after epoch; this rank's slice of each."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, ranks: Ranks) -> None:
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start
        self.per_epoch = n // batch_size
        self.lo, self.hi = ranks.bounds(batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            for b in range(offset, self.per_epoch):
                yield order[b * self.batch_size + self.lo : b * self.batch_size + self.hi].tolist()
            epoch, offset = epoch + 1, 0


class BatchStream:
    """Iterator over this rank's part of ``(inputs, targets)`` batches.

    ``position`` counts the global batches handed out (the same on every rank). ``whole_tokens`` is
    the target count of the last whole batch when the ranks read whole batches (DataLoader or
    IterableDataset), else None: a map-style dataset's batches are exactly ``batch_size`` samples.
    """

    def __init__(
        self,
        data: Any,
        *,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        start: int = 0,
        ranks: Ranks = Ranks(),
        batch_format: BatchFormat = BatchFormat(),
    ) -> None:
        self.position = start
        self.batch_format = batch_format
        self.ranks = ranks
        self.whole_tokens: int | None = None
        # the loader is the dataset interface's (flops_fit.data.wrap_dataset): a DataLoader passes
        # through, an IterableDataset is batched in order, a map-style dataset gets the epoch sampler
        whole = isinstance(data, (DataLoader, IterableDataset))
        sampler = None if whole else _EpochBatchSampler(len(data), batch_size, seed, start, ranks)
        self._loader = wrap_dataset(data, batch_size, num_workers, shuffle=False, batch_sampler=sampler,
                                    pin_memory=pin_memory)
        self._whole, skip = whole, start if whole else 0
        self._it = iter(self._loader)
        for _ in range(skip):
            self._next_raw()

    def _next_raw(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self._loader)  # next epoch
            try:
                return next(self._it)
            except StopIteration:
                raise ValueError("the training data yielded no batch at all") from None

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> Any:
        batch = self.batch_format(self._next_raw())
        self.position += 1
        if self._whole:
            self.whole_tokens = batch[1].numel()
            return self.ranks.shard(batch)
        return batch
