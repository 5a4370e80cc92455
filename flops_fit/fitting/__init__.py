"""Scaling-law fitting: Approach 2 (isoFLOP profiles), Approach 3 (parametric law), bootstrap, fit.json."""

from .fit import fit_table
from .report import write_fit
from .table import read_table

__all__ = ["fit_table", "read_table", "write_fit"]
