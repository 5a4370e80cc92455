"""Where and in what precision a run trains: CUDA (bf16 autocast, TF32) when present, else CPU threads."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_map


@dataclass(frozen=True)
class DeviceSetup:
    device: torch.device
    autocast_dtype: torch.dtype | None  #: None = full fp32
    description: str  #: recorded in metrics.json, e.g. "cuda (NVIDIA H100 80GB HBM3), bf16"

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def move(self, obj: Any) -> Any:
        """Tensors in ``obj`` (any nesting) on the device; asynchronous copies from pinned memory on CUDA."""
        if not self.is_cuda:
            return obj
        return tree_map(lambda t: t.to(self.device, non_blocking=True) if isinstance(t, torch.Tensor) else t, obj)


def setup_device(
    device: str = "auto", precision: str = "auto", threads: int | None = None, local_rank: int | None = None
) -> DeviceSetup:
    """Resolve the ``training.device``/``precision`` settings and configure torch for them.

    ``auto`` picks CUDA when present. On CUDA, TF32 matmuls are enabled (fp32 accuracy is not needed for
    the matmuls of a scaling sweep and TF32 is up to 8x faster). ``precision: auto`` means bf16
    autocast where the GPU supports it, else fp32; on CPU ``auto`` is fp32 because bf16 autocast was
    measured slower there. ``threads`` sets torch's intra-op threads (the rule's ``threads``).
    ``local_rank`` (one of several processes on a node) selects and makes current CUDA device
    ``local_rank``; None keeps the current device.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"training.device must be auto, cpu or cuda, not {device!r}")
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"training.precision must be auto, fp32 or bf16, not {precision!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but torch sees no CUDA device; set training.device: auto or cpu")
    if threads:
        torch.set_num_threads(int(threads))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
        if local_rank is not None:
            if local_rank >= torch.cuda.device_count():
                raise RuntimeError(
                    f"training process {local_rank} of this node has no GPU: torch sees "
                    f"{torch.cuda.device_count()}; lower training.processes_per_run to the GPUs per node"
                )
            torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", torch.cuda.current_device())
        bf16_ok = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not bf16_ok:
            raise RuntimeError(f"{torch.cuda.get_device_name(dev)} has no bf16 support; set training.precision: fp32")
        dtype = torch.bfloat16 if precision == "bf16" or (precision == "auto" and bf16_ok) else None
        name = f"cuda ({torch.cuda.get_device_name(dev)})"
    else:
        dev = torch.device("cpu")
        dtype = torch.bfloat16 if precision == "bf16" else None
        name = f"cpu ({torch.get_num_threads()} threads)"
    return DeviceSetup(dev, dtype, f"{name}, {'bf16' if dtype else 'fp32'}")
