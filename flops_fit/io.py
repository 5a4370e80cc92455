"""Atomic writers: every output is written to a temp file in the same folder and renamed into place.

A rename is atomic on POSIX, so a reader (Snakemake, a resumed run, a user) never sees half a file,
and a job killed mid-write leaves the previous version intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text(text: str, path: str | Path) -> None:
    path = Path(path)
    tmp = _temp_beside(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(obj: Any, path: str | Path) -> None:
    """Strict JSON: NaN/inf are refused (write null instead) so every JSON reader can load it."""
    write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", path)


def write_tsv(table: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    tmp = _temp_beside(path)
    table.to_csv(tmp, sep="\t", index=False, float_format="%.10g")
    os.replace(tmp, path)
