"""Where a job finds its worker: a Unix socket named after everything the warm process depends on.

A worker imported flops_fit and torch when it started, from its Python, ``PYTHONPATH`` and working
directory, under the environment variables torch reads at import. A job may only use a worker that
would have imported exactly what the job itself would import now, so all of that is hashed into the
socket's name: editing flops_fit (an editable install) or switching environments starts a new worker
and the old one runs out its idle time. Standard library only: the job's side must start in
milliseconds, without importing torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

#: environment variables read when torch, its thread pools and matplotlib start (the children inherit the
#: job's whole environment, but these act in the parent's imports)
IMPORT_TIME_ENV = ("OMP_", "MKL_", "KMP_", "TORCH_", "PYTORCH_", "PYTHON", "MPL")
#: a SLURM job step's worker lives in that step's cgroup and is killed when the step ends, so it serves
#: only that step: the train jobs of one group job (the jobstep plugin runs a group in one srun step)
JOB_ENV = ("SLURM_JOB_ID", "SLURM_STEP_ID")


def source_fingerprint(package: Path) -> list[tuple[str, int, int]]:
    """(path, mtime, size) of every Python file of ``package``: changes whenever its code does."""
    return sorted((str(path), st.st_mtime_ns, st.st_size) for path in package.rglob("*.py") for st in [path.stat()])


def worker_key(cwd: str | None = None) -> str:
    """A short hash of the interpreter, the import path, the code and the import-time environment."""
    package = Path(__file__).resolve().parents[1]
    torch_spec = importlib.util.find_spec("torch")
    torch_origin = Path(torch_spec.origin) if torch_spec and torch_spec.origin else None
    parts = {
        "python": sys.executable,
        "cwd": cwd or os.getcwd(),
        "env": sorted((k, v) for k, v in os.environ.items() if k.startswith(IMPORT_TIME_ENV) or k in JOB_ENV),
        "flops_fit": source_fingerprint(package),
        "torch": (str(torch_origin), torch_origin.stat().st_mtime_ns) if torch_origin else None,
    }
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def socket_dir() -> Path:
    """A private folder for the sockets (``$XDG_RUNTIME_DIR`` when set, else the temp dir), mode 0700:
    a worker runs whatever command a connection sends it, so only its user may connect."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"flops-fit-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise PermissionError(f"{folder} must belong to you and be private (mode 0700) to hold worker sockets")
    return folder


def worker_socket(cwd: str | None = None) -> Path:
    """The socket of the worker this job may use (a Unix socket path stays under 108 characters)."""
    return socket_dir() / f"worker-{worker_key(cwd)}.sock"
