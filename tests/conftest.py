"""Fixtures shared by the test modules: one `.test` sweep per session, read by every module that needs one.

The sweep (lr calibration, two budgets in waves, fit, plots, recommendation, summary page) is the
expensive part of the suite, so it runs once; tests only read it, and a test that changes a sweep
works on a copy (:func:`copy_sweep`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from workflow_support import ROOT, processes, snakemake


@pytest.fixture(scope="session", autouse=True)
def stop_training_workers(tmp_path_factory):
    """After the session, stop the training workers its sweeps started (each would idle for
    ``worker.idle_seconds`` holding torch in memory): those working in this session's temp folders."""
    yield
    base = tmp_path_factory.getbasetemp().resolve()
    for pid, cmdline, cwd in processes():
        if b"flops_fit" in cmdline and b"worker" in cmdline and cwd.is_relative_to(base):
            os.kill(pid, signal.SIGTERM)


@pytest.fixture(scope="session")
def test_sweep_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``.test/config`` through the real snakemake CLI: (working directory, the finished process)."""
    workdir = tmp_path_factory.mktemp("test_sweep")
    shutil.copytree(ROOT / ".test" / "config", workdir / "config")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir, result


@pytest.fixture(scope="session")
def test_sweep(test_sweep_run) -> Path:
    """The finished `.test` sweep's working directory (read it; copy it to change it)."""
    return test_sweep_run[0]


def copy_sweep(sweep: Path, destination: Path) -> Path:
    """A finished sweep, copied with its timestamps and Snakemake metadata, to extend or rerun safely."""
    shutil.copytree(sweep, destination, symlinks=True)
    return destination
