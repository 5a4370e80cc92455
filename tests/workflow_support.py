"""Running the real `snakemake` CLI from tests: the repository root and one helper for every module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``snakemake`` on this repository's workflow in ``workdir``, 2 cores, no workflow profile."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
         "--directory", str(workdir), "--cores", "2", "--workflow-profile", "none", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
