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

#: significant digits of a float in a TSV table (``write_tsv``)
TSV_DIGITS = 10


def as_written(x: float) -> float:
    """``x`` exactly as a table written by :func:`write_tsv` reads it back. Rounding to the written
    precision is idempotent, so a value computed now and the same value read back compare equal
    (rounding to fewer digits than the file holds is not: 0.008283562585438366 rounds to
    0.00828356259, its written form 0.008283562585 to 0.00828356258)."""
    return float(f"{float(x):.{TSV_DIGITS}g}")


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
    table.to_csv(tmp, sep="\t", index=False, float_format=f"%.{TSV_DIGITS}g")
    os.replace(tmp, path)
