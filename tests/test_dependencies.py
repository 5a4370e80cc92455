"""Every documented command runs after the README's `pip install -e .`: what it needs is a declared dependency.

`snakemake --report` imports some packages only when it writes a report (pygments, jinja2) and
snakemake does not require all of them itself: `make run` worked only because the test extras
pulled pygments in. No network: pyproject.toml and the installed snakemake's source are read.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import snakemake

ROOT = Path(__file__).resolve().parents[1]
#: what `snakemake --report` imports (snakemake/report/), whether or not snakemake itself asks for it
REPORT_NEEDS = {"pygments", "jinja2"}


def _name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement ("Jinja2>=3" -> "jinja2")."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in project["dependencies"]}


def report_asks_for() -> set[str]:
    """The packages snakemake's report code says "must be installed to create reports"."""
    source = Path(snakemake.__file__).parent / "report"
    found = set()
    for path in source.rglob("*.py"):
        found |= {m.lower() for m in re.findall(r"Python package (\S+) must be\s+installed", path.read_text())}
    return found


def test_every_package_the_report_needs_is_a_declared_dependency():
    asked = report_asks_for()
    assert asked, "snakemake's report no longer names its packages: check REPORT_NEEDS by hand"
    needs = REPORT_NEEDS | asked
    missing = needs - _declared()
    assert not missing, f"`snakemake --report` needs {sorted(missing)}: add them to pyproject.toml's dependencies"


def test_the_pinned_environments_pin_the_report_packages_too():
    pins = {_name(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert REPORT_NEEDS <= pins
    conda = (ROOT / "workflow/envs/flops_fit.yaml").read_text()
    assert all(re.search(rf"^\s*- {name}==", conda, re.M | re.I) for name in REPORT_NEEDS)
    # torch stays pinned where the files pin it (this machine's CPU build)
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text() and "torch==2.13.0" in conda
