"""Read and validate a results table of (N, D, loss) runs, and assign isoFLOP budget groups.

Columns: ``N`` (parameters), ``D`` (tokens), ``loss``; optional ``C`` (training FLOPs, default
6·N·D), ``budget`` (isoFLOP group label, a FLOP count), ``run_id``, ``status`` (rows other than
``ok`` are dropped with a warning, as the workflow's diverged runs are).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED = ("N", "D", "loss")
NUMERIC = ("N", "D", "loss", "C", "budget")
#: Approach 3 has 5 parameters; fewer rows than this cannot constrain it
MIN_POINTS = 6
#: rows whose C is within this factor of a planned budget belong to it (achieved FLOPs are within 1 %)
BUDGET_TOLERANCE = 1.25
#: without planned budgets, C values closer than this (in log10) chain into one group ...
GROUP_GAP_DEC = 0.02
#: ... and a group spanning more than this (in log10) is not an isoFLOP group
GROUP_SPAN_DEC = 0.1


def _row_labels(df: pd.DataFrame, mask: np.ndarray) -> str:
    """Name offending rows by run_id when present, else by their line in the file (header = line 1)."""
    idx = np.flatnonzero(mask)
    if "run_id" in df.columns:
        names = [str(df["run_id"].iloc[i]) for i in idx[:10]]
    else:
        names = [f"line {i + 2}" for i in idx[:10]]
    more = f" and {idx.size - 10} more" if idx.size > 10 else ""
    return ", ".join(names) + more


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or TSV results table (delimiter from the extension, else sniffed) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"results table {path} does not exist")
    if path.suffix.lower() in (".tsv", ".tab"):
        sep = "\t"
    elif path.suffix.lower() == ".csv":
        sep = ","
    else:
        head = path.read_text(errors="replace")[:4096]
        try:
            sep = csv.Sniffer().sniff(head, delimiters=",\t;").delimiter
        except csv.Error:
            raise ValueError(f"cannot tell the delimiter of {path}: use a .csv or .tsv file") from None
    try:
        df = pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot parse {path} as a {'TSV' if sep == chr(9) else 'CSV'} table: {exc}") from None
    return validate_table(df, source=str(path))


def validate_table(df: pd.DataFrame, source: str = "table") -> pd.DataFrame:
    """Check columns and values; return a copy with numeric columns as float.

    Raises ValueError naming missing columns, or the rows holding non-numeric, non-finite or
    non-positive values, or too few rows.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}. "
            "Columns N (parameters), D (tokens) and loss are required; C (FLOPs) and budget are optional "
            "(if you only have C, add D = C / (6 N)).")
    out = df.copy()
    for col in NUMERIC:
        if col not in out.columns:
            continue
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"{source}: column {col} has missing, non-numeric or non-finite values in rows "
                             f"{_row_labels(out, bad)}; fix or remove those rows")
        bad = values <= 0
        if bad.any():
            raise ValueError(f"{source}: column {col} must be positive; rows {_row_labels(out, bad)} are not")
        out[col] = values
    if len(out) < MIN_POINTS:
        raise ValueError(f"{source}: {len(out)} row(s); the parametric fit needs at least {MIN_POINTS} runs "
                         "(5 parameters)")
    return out


def drop_failed(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop rows whose ``status`` is not ``ok`` (diverged runs), returning a warning for them."""
    if "status" not in df.columns:
        return df, []
    bad = (df["status"].astype(str) != "ok").to_numpy()
    if not bad.any():
        return df, []
    msg = f"dropped {bad.sum()} run(s) whose status is not ok: {_row_labels(df, bad)}"
    return df.loc[~bad].reset_index(drop=True), [msg]


def assign_budgets(C: np.ndarray, budgets: Sequence[float] | None) -> tuple[np.ndarray, list[str]]:
    """Budget group (a FLOP count, NaN for none) for each row, from C and the planned budgets.

    With planned budgets, each row joins the nearest one in log space if within BUDGET_TOLERANCE.
    Without them, rows are grouped by chaining C values less than GROUP_GAP_DEC decades apart, and a
    group spanning more than GROUP_SPAN_DEC decades (runs at assorted budgets) is not a group.
    """
    logC = np.log10(C)
    warnings: list[str] = []
    group = np.full(C.size, np.nan)
    if budgets is not None and len(budgets):
        planned = np.asarray(budgets, float)
        lb = np.log10(planned)
        near = np.argmin(np.abs(logC[:, None] - lb[None, :]), axis=1)
        ok = np.abs(logC - lb[near]) <= np.log10(BUDGET_TOLERANCE)
        group[ok] = planned[near[ok]]
        if (~ok).any():
            warnings.append(f"{(~ok).sum()} run(s) have C more than {BUDGET_TOLERANCE}x away from every planned "
                            "budget and join no isoFLOP group")
        return group, warnings
    order = np.argsort(logC)
    breaks = np.flatnonzero(np.diff(logC[order]) > GROUP_GAP_DEC) + 1
    for members in np.split(order, breaks):
        if logC[members].max() - logC[members].min() <= GROUP_SPAN_DEC:
            group[members] = 10 ** np.median(logC[members])
    return group, warnings
