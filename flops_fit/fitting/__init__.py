"""Scaling-law fitting: Approach 2 (isoFLOP profiles), Approach 3 (parametric law), bootstrap, fit.json."""

from .fit import fit_table
from .records import ScalingFit, read_fit
from .summary import write_fit
from .table import read_table

__all__ = ["ScalingFit", "fit_table", "read_fit", "read_table", "write_fit"]
