"""Several processes per run (``torchrun`` + DistributedDataParallel): who this process is, and its share.

``torchrun`` starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
variables; :func:`process_group` joins that group (NCCL on CUDA, gloo on CPU). The run's numbers do
not depend on the process count:

* the global batch stays the plan's ``batch_size``: every rank takes a contiguous slice of every
  global batch (:meth:`Ranks.bounds`); when the batch does not divide by the process count the slices
  differ by one sample, and each rank weights its loss by its share of the step's tokens, so the
  averaged gradient is exactly the gradient of the global token-mean loss;
* the token budget is counted globally, identically on every rank;
* losses are summed over ranks, so every rank takes the same divergence and stop decisions.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils._pytree import tree_map

if dist.is_available():
    # Before any process group exists: this module (imported by DistributedDataParallel) binds
    # ``group.WORLD`` as the default argument of its functions at import time. Imported after
    # init_process_group, that pins the group forever, destroy_process_group frees nothing and gloo's
    # threads run on into the process's exit (see leave_process_group).
    import torch.distributed.nn  # noqa: F401


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: rank ``rank`` of ``world_size`` (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes metrics, curve, checkpoints and progress logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def bounds(self, samples: int) -> tuple[int, int]:
        """This rank's ``[lo, hi)`` of ``samples``: contiguous, disjoint, covering, sizes within one.

        Refuses a batch with fewer samples than processes: a rank without data would have nothing to
        back-propagate and DDP needs every rank in every gradient reduction.
        """
        if samples < self.world_size:
            raise ValueError(
                f"a batch of {samples} samples cannot give each of the {self.world_size} training processes "
                "a sample; lower training.processes_per_run or raise the batch size (a DataLoader's "
                "batch_size, or sweep batch settings)"
            )
        return samples * self.rank // self.world_size, samples * (self.rank + 1) // self.world_size

    def shard(self, batch: Any) -> Any:
        """This rank's samples of a collated batch: every tensor sliced along its first (sample) dim."""
        if not self.distributed:
            return batch
        lo, hi = self.bounds(len(batch[1]))
        return tree_map(lambda t: t[lo:hi] if isinstance(t, torch.Tensor) else t, batch)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place (asynchronous on CUDA: no host sync); returns it."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def any_(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank: a collective that every rank calls at the same step.

        It reduces over gloo on the CPU, so on CUDA it costs no device synchronisation (NCCL would
        need the flag on the GPU and a host sync to read it back, every step).
        """
        if not self.distributed:
            return flag
        tensor = torch.tensor([int(flag)])
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_cpu_group())
        return bool(tensor.item())

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0 has written a file the others depend on)."""
        if self.distributed:
            dist.barrier()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DDP (gradients averaged over ranks in backward); the model itself for one process."""
        if not self.distributed:
            return model
        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


#: the gloo group of CPU-side decisions, per default group (a caller may destroy and re-create its group)
_CPU_GROUPS: dict[int, Any] = {}


def _cpu_group() -> Any:
    """The default group when it runs gloo, else a gloo group over the same ranks, created on first use."""
    if dist.get_backend() == "gloo":
        return None
    key = id(dist.group.WORLD)
    if key not in _CPU_GROUPS:
        _CPU_GROUPS[key] = dist.new_group(backend="gloo")
    return _CPU_GROUPS[key]


def launched() -> Ranks:
    """The ranks ``torchrun`` assigned this process (``RANK``, ``WORLD_SIZE``); one process without it."""
    return Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def local_rank() -> int | None:
    """This process's index on its node (``torchrun``'s ``LOCAL_RANK``, so its GPU); None without a launcher."""
    value = os.environ.get("LOCAL_RANK")
    return None if value is None else int(value)


def process_group(is_cuda: bool) -> Ranks:
    """The ranks of this run; joins ``torchrun``'s process group (once per process) when there is one.

    Without ``torchrun`` (``WORLD_SIZE`` unset or 1) the run is one process and nothing is initialised.
    A group the caller initialised is used as it is. One the engine initialises stays open for later
    runs in the same process (a group cannot be re-initialised reliably under one torchrun launch)
    and is left at exit (:func:`leave_process_group`).
    """
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    if not launched().distributed:
        return Ranks()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed; use one process per run")
    device = torch.device("cuda", torch.cuda.current_device()) if is_cuda else None
    dist.init_process_group("nccl" if is_cuda else "gloo", device_id=device)
    atexit.register(leave_process_group)
    return Ranks(dist.get_rank(), dist.get_world_size())


def leave_process_group() -> None:
    """At exit: wait for every rank, then destroy the group, stopping gloo's threads while Python still runs.

    The group's backend must be gone before the interpreter shuts down: a gloo backend still alive
    then (its TCP loop and two worker threads running) is torn down by the C++ runtime during exit,
    while the peer is exiting and closing its sockets too; PyTorch warns about exactly this in
    ``destroy_process_group``. The barrier keeps a rank from closing its connections while a peer
    still communicates. After an uncaught exception (``sys.last_value``) the peers will not come to a
    barrier (torchrun stops them once this rank exits), so this rank only destroys. A group the
    caller already destroyed is left alone.
    """
    if not dist.is_initialized():
        return
    if getattr(sys, "last_value", None) is None:
        dist.barrier()
    dist.destroy_process_group()
