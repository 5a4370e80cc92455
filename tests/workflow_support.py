"""Running the real `snakemake` CLI from tests: the repository root and one helper for every module."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def processes() -> Iterator[tuple[int, list[bytes], Path]]:
    """(pid, command line, working directory) of every process this user can inspect."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = (proc / "cwd").resolve()
        except OSError:
            continue
        yield int(proc.name), cmdline, cwd


def snakemake(
    workdir: Path, *args: str, timeout: int = 900, cores: int = 2, as_user: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``snakemake`` on this repository's workflow in ``workdir``, no workflow profile.

    ``as_user``: run it the way a user runs it in a clone, from ``workdir`` with relative paths and
    Snakemake finding ``workflow/Snakefile`` itself (``workdir`` must hold the workflow). ``env``: variables
    to add to the environment (the jobs inherit it).
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    where = [] if as_user else ["--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory", str(workdir)]
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *where, "--cores", str(cores), "--workflow-profile", "none", *args],
        cwd=workdir if as_user else None, capture_output=True, text=True, timeout=timeout, env=env,
    )
