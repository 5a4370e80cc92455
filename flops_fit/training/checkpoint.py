"""Resumable checkpoints: written atomically, loaded with ``weights_only=True``.

They live outside the run's declared outputs because Snakemake deletes declared outputs before it
retries a job; a preempted or killed run then resumes where its last checkpoint left it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from, as weights_only-loadable values.

    Only the current CUDA device's generator: it is the one this process trains on (with several
    processes, each has its own GPU), and asking for all devices would create a context on each.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _tuples(value: Any) -> Any:
    """random.setstate wants tuples back where pickling may have kept or changed them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(checkpoint_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``checkpoint_dir/checkpoint.pt`` atomically (temp file + rename)."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_dir / CHECKPOINT_NAME
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none."""
    path = checkpoint_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def remove_checkpoint(checkpoint_dir: Path) -> None:
    """Delete the checkpoint and the temp files of writes that a kill interrupted, then the empty directory."""
    (checkpoint_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
    for partial in checkpoint_dir.glob(Path(CHECKPOINT_NAME).stem + ".tmp*"):
        partial.unlink(missing_ok=True)
    try:
        checkpoint_dir.rmdir()  # only if empty: the directory may be shared or hold user files
    except OSError:
        pass
