"""Logging set-up shared by the workflow's scripts and the CLI: one log file per job, plus the console."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup(log_path: str | Path | None, console: bool = True) -> logging.Logger:
    """Send the ``flops_fit`` logger to ``log_path`` (and stderr, so Snakemake's console shows it)."""
    logger = logging.getLogger("flops_fit")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = []
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def fail(logger: logging.Logger, step: str, error: Exception) -> None:
    """Report a user error as one readable message (log file and console) and exit non-zero."""
    logger.error("%s failed: %s", step, error)
    sys.exit(1)
