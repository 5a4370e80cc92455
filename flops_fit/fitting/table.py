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
#: rows whose C is within this factor of a planned budget belong to it (achieved FLOPs are within 1 %),
#: never past the geometric midpoint to a neighbouring planned budget
BUDGET_TOLERANCE = 1.25
#: without planned budgets, C values closer than this (in log10) chain into one cluster ...
GROUP_GAP_DEC = 0.02
#: ... a cluster spanning more than this (in log10) is runs at assorted budgets, not an isoFLOP group ...
GROUP_SPAN_DEC = 0.1
#: ... an isoFLOP group has at least this many distinct sizes (a parabola with a residual) ...
GROUP_MIN_SIZES = 4
#: ... and the groups must hold this share of the runs: a table of checkpoints or assorted runs where
#: a few C values coincide by chance is no isoFLOP design
GROUP_COVERAGE = 0.9


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


def midpoint_limits(lb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half the log10 distance from each of the sorted log10 budgets ``lb`` to its neighbour below and
    above (inf past the outer budgets): how far a run may lie from a budget and still be nearer to it.

    BUDGET_TOLERANCE alone exceeds these for budgets less than 1.56x apart (6e18 and 1e19 are 1.67x
    apart, half of that is 1.29x): a run's budget must also be its nearest, so one profile never
    mixes runs of two budgets.
    """
    half = np.diff(lb) / 2
    return np.concatenate([[np.inf], half]), np.concatenate([half, [np.inf]])


def assign_budgets(C: np.ndarray, budgets: Sequence[float]) -> tuple[np.ndarray, list[str]]:
    """Budget group (a FLOP count, NaN for none) of each row, and a warning counting the rows left out.

    A row joins a planned budget when its C lies strictly on that budget's side of the geometric
    midpoints to the neighbouring planned budgets and within BUDGET_TOLERANCE of it. Rows beyond
    the outer budgets' tolerance join none: grouping them would bend the outer profiles.
    """
    planned = np.unique(np.asarray(budgets, float))
    logC, lb = np.log10(C), np.log10(planned)
    below, above = midpoint_limits(lb)
    near = np.argmin(np.abs(logC[:, None] - lb[None, :]), axis=1)
    offset = logC - lb[near]
    midpoint = np.where(offset >= 0, above[near], below[near])
    ok = (np.abs(offset) <= np.log10(BUDGET_TOLERANCE)) & (np.abs(offset) < midpoint)
    group = np.where(ok, planned[near], np.nan)
    warnings = []
    if (~ok).any():
        warnings.append(
            f"{(~ok).sum()} of {C.size} run(s) (C from {C[~ok].min():.3g} to {C[~ok].max():.3g}) lie more than "
            f"{BUDGET_TOLERANCE:.3g}x from every planned budget ({', '.join(f'{b:.3g}' for b in planned)}) "
            "and join no isoFLOP group")
    return group, warnings


def separated_groups(C: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, str | None]:
    """isoFLOP groups read off C alone, only when the C values clearly form them; else all NaN.

    Sorted log10 C values less than GROUP_GAP_DEC apart chain into clusters. A cluster is a group
    when it spans at most GROUP_SPAN_DEC and holds GROUP_MIN_SIZES or more distinct N. The table has
    an isoFLOP design when there are 2 or more groups and they hold GROUP_COVERAGE of the runs.
    Returns (group per row, None) or (all NaN, the reason no design was found).
    """
    logC = np.log10(C)
    order = np.argsort(logC)
    clusters = np.split(order, np.flatnonzero(np.diff(logC[order]) > GROUP_GAP_DEC) + 1)
    group = np.full(C.size, np.nan)
    for members in clusters:
        if (np.ptp(logC[members]) <= GROUP_SPAN_DEC
                and np.unique(N[members]).size >= GROUP_MIN_SIZES):
            group[members] = 10 ** np.median(logC[members])
    n_groups = np.unique(group[np.isfinite(group)]).size
    share = np.isfinite(group).mean()
    if n_groups >= 2 and share >= GROUP_COVERAGE:
        return group, None
    return np.full(C.size, np.nan), (
        f"the C values do not form separated isoFLOP groups ({n_groups} cluster(s) within "
        f"{GROUP_SPAN_DEC} decades with {GROUP_MIN_SIZES}+ sizes, holding {share:.0%} of the runs; "
        f"need 2+ holding {GROUP_COVERAGE:.0%})")


def group_runs(df: pd.DataFrame, C: np.ndarray, budgets: Sequence[float] | None) -> tuple[np.ndarray, str | None, list[str]]:
    """isoFLOP group of each row (NaN: none), where the groups came from, and warnings.

    In order of trust: a ``budget`` column, the planned ``budgets``, then C values that clearly form
    groups (:func:`separated_groups`). Without any, Approach 2 cannot be fitted and is skipped with
    a warning: grouping nearby C values of an arbitrary table invents isoFLOP profiles.
    """
    if "budget" in df.columns:
        return df["budget"].to_numpy(float), "the budget column", []
    if budgets is not None and len(budgets):
        group, warnings = assign_budgets(C, budgets)
        return group, "the planned budgets", warnings
    group, why_not = separated_groups(C, df["N"].to_numpy(float))
    if why_not is None:
        source = "separated C values"
        warnings = []
        if np.isnan(group).any():
            warnings.append(f"{np.isnan(group).sum()} run(s) outside the isoFLOP groups ({_row_labels(df, np.isnan(group))})"
                            " are fitted by Approach 3 only")
        return group, source, warnings
    return group, None, [f"no isoFLOP groups: no budget column, no planned budgets, and {why_not}; "
                           "Approach 3 alone is reported (add a budget column to fit isoFLOP profiles)"]
