"""flops_fit: compute-optimal scaling laws for your own PyTorch model, data and loss.

``flops_fit.find_optimal(...)`` runs the whole sweep from Python; the Snakemake workflow in
``workflow/`` runs the same steps from a config file.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ScalingResult", "find_optimal", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so `flops-fit fit` (numpy/scipy only) does not pay for importing torch.
    if name in ("find_optimal", "ScalingResult"):
        from flops_fit import api

        return getattr(api, name)
    raise AttributeError(f"module 'flops_fit' has no attribute {name!r}")
