"""Write ``fit.json`` (strict JSON: NaN/inf become null) and a readable ``summary.tsv``, atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def strict(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays to Python and non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [strict(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(v: Any) -> str:
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


def summary_rows(result: dict) -> list[tuple[str, str, Any, Any, Any]]:
    """(section, quantity, value, ci_lo, ci_hi) rows of the summary table."""
    rows = []
    par = result["parametric"]
    for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
        ci = par["ci"].get(name) or [None, None]
        rows.append(("parametric", name, par[name], *ci))
    rows.append(("parametric", "objective", par["objective"], None, None))
    iso = result["isoflop"]
    for name in ("a", "b"):
        ci = iso["ci"].get(name) or [None, None]
        rows.append(("isoflop", name, iso[name], *ci))
    for pb in iso["per_budget"]:
        rows.append(("isoflop_budget", f"N_opt@C={pb['C']:.4g}", pb["N_opt"],
                     "interior" if pb["interior"] else "refused", pb["reason"]))
    for p in result["predictions"]:
        for q in ("N", "D", "loss"):
            ci = p["ci"][q] or [None, None]
            rows.append(("prediction", f"{q}*@C={p['C']:.4g}", p[q], *ci))
        if p["isoflop_N"] is not None:
            ci = p["isoflop_ci"]["N"] or [None, None]
            rows.append(("prediction_isoflop", f"N*@C={p['C']:.4g}", p["isoflop_N"], *ci))
    for w in result["warnings"]:
        rows.append(("warning", "", w, None, None))
    return rows


def write_fit(result: dict, out_dir: str | Path) -> None:
    """Write ``out_dir/fit.json`` and ``out_dir/summary.tsv`` (each via a temp file + os.replace)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "fit.json", json.dumps(strict(result), indent=2, allow_nan=False) + "\n")
    lines = ["section\tquantity\tvalue\tci_lo\tci_hi"]
    lines += ["\t".join(_fmt(v).replace("\t", " ") for v in row) for row in summary_rows(result)]
    _atomic_write(out / "summary.tsv", "\n".join(lines) + "\n")
