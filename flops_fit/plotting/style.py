"""Shared figure conventions: the Agg backend, one colour per budget, PNG + SVG output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on clusters and CI without a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from flops_fit.fitting.records import ScalingFit  # noqa: E402


def budget_colors(budgets) -> dict[float, tuple]:
    """One colour per budget along a sequential map, so the order of C is visible."""
    budgets = sorted(set(float(b) for b in budgets))
    cmap = plt.get_cmap("viridis")
    return {b: cmap(0.1 + 0.8 * i / max(1, len(budgets) - 1)) for i, b in enumerate(budgets)}


def save(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` (report, README) and ``stem.svg`` (papers), then close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.tight_layout()
    for path in paths:
        tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
        fig.savefig(tmp, dpi=150)
        tmp.replace(path)
    plt.close(fig)
    return paths


def n_label(fit: ScalingFit) -> str:
    """Axis label of N from the fit's recorded convention (``N_convention``); a table whose convention
    is unknown (and a fit.json from before the key existed) gets plain 'parameters N'."""
    convention = fit.N_convention
    return f"parameters N ({convention})" if convention else "parameters N"
