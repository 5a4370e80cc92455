"""Figures of a sweep. Every function saves ``<stem>.png`` and ``<stem>.svg`` and returns the paths."""
