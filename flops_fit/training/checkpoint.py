"""Resumable checkpoints: written atomically, loaded with ``weights_only=True``, never a dead end.

They live outside the run's declared outputs because Snakemake deletes declared outputs before it
retries a job; a preempted or killed run then resumes where its last checkpoint left it.

A checkpoint that cannot be read (truncated by a full disk, half-synced on a shared filesystem) or
that belongs to another plan of the run is renamed aside (``checkpoint.pt.unreadable`` /
``checkpoint.pt.mismatched``), not deleted and not retried forever: the run starts over, and the
file stays for a post-mortem.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"
#: bumped when the saved state changes shape; a checkpoint of another format is set aside as mismatched
FORMAT = 2


class UnusableCheckpoint(Exception):
    """A checkpoint that exists but cannot be resumed; ``kind`` names the suffix it is set aside with."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  #: "unreadable" or "mismatched"


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
    """Write ``state`` (stamped with :data:`FORMAT`) to ``checkpoint_dir/checkpoint.pt`` atomically (temp file + rename)."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_dir / CHECKPOINT_NAME
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({**state, "format": FORMAT}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(checkpoint_dir: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of the run with ``fingerprint``; None when there is no checkpoint.

    Raises :class:`UnusableCheckpoint` when the file cannot be read (any error of ``torch.load``:
    a truncated zip gives ``OSError``/``RuntimeError``, garbage an ``UnpicklingError``), is of
    another format, or belongs to another plan of the run (a re-planned run must start afresh).
    """
    path = checkpoint_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever torch.load raises, the file is of no use
        raise UnusableCheckpoint("unreadable", f"{type(error).__name__}: {error}") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format", 1) if isinstance(state, dict) else type(state).__name__
        raise UnusableCheckpoint("mismatched", f"checkpoint format {found}, this version writes {FORMAT}")
    if state.get("fingerprint") != fingerprint:
        raise UnusableCheckpoint("mismatched", f"it belongs to another plan of this run ({state.get('fingerprint')})")
    return state


def set_aside(checkpoint_dir: Path, kind: str) -> Path:
    """Rename the checkpoint to ``checkpoint.pt.<kind>`` (replacing an older one) so the run can start over."""
    path = checkpoint_dir / CHECKPOINT_NAME
    aside = path.with_name(f"{CHECKPOINT_NAME}.{kind}")
    os.replace(path, aside)
    return aside


def remove_checkpoint(checkpoint_dir: Path) -> None:
    """Delete the checkpoint and the temp files of writes that a kill interrupted, then the empty directory.

    Set-aside files stay (and so does the directory): they are evidence for whoever looks into the fault.
    """
    (checkpoint_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
    for partial in checkpoint_dir.glob(Path(CHECKPOINT_NAME).stem + ".tmp*"):
        partial.unlink(missing_ok=True)
    try:
        checkpoint_dir.rmdir()  # only if empty: the directory may be shared or hold user files
    except OSError:
        pass
