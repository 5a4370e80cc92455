"""``flops-fit script PATH [ARGS]``: run one of the workflow's rule scripts (``workflow/scripts/*.py``).

Every rule that runs Python calls its script through this command, not through Snakemake's
``script:`` directive, so that the job may run in a child of the warm worker (:mod:`flops_fit.worker`)
as train jobs do: a script job then starts in about 0.1 s instead of paying 4-7 s for Python, torch
and flops_fit. The script runs as ``python PATH ARGS`` would (``__name__ == "__main__"``, ``sys.argv``,
its folder first on the import path); an exception it raises is logged to the ``flops_fit`` logger,
which the script has pointed at its rule's log file, and fails the job.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from pathlib import Path

#: the environment variable with the absolute path of ``workflow/scripts`` (set by the Snakefile)
SCRIPTS_ENV = "FLOPS_FIT_SCRIPTS"


#: the options many rule scripts share (the inputs named alike in every rule), with their help
SHARED_OPTIONS = {
    "config": "validated.json",
    "runs_dir": "the finished runs' folder",
    "fit": "fit.json",
    "recommendations": "recommendations.tsv",
    "lr": "lr_calibration.json",
    "log_file": "the rule's log file",
}


def rule_args(
    description: str | None, *shared: str, **options: str | dict
) -> tuple[argparse.Namespace, logging.Logger]:
    """A rule script's command line: its rule's inputs, outputs and params as options, one ``--name`` per
    name of :data:`SHARED_OPTIONS` in ``shared`` and per keyword (its help text, or the settings of
    ``add_argument``; required unless given a default), and the ``--log-file`` every rule passes; returns
    them with the ``flops_fit`` logger pointed at that file."""
    from flops_fit.logs import setup

    parser = argparse.ArgumentParser(description=description)
    names = {name: SHARED_OPTIONS[name] for name in (*shared, "log_file")}
    for name, spec in {**names, **options}.items():
        settings = {"help": spec} if isinstance(spec, str) else spec
        parser.add_argument("--" + name.replace("_", "-"), required="default" not in settings, **settings)
    args = parser.parse_args()
    return args, setup(args.log_file)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the script to run (a workflow/scripts/*.py file)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")


def exit_status(stop: SystemExit) -> int:
    """The status a process would exit with after ``sys.exit(code)`` (a message means 1)."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def main(args: argparse.Namespace) -> int:
    sys.argv = [str(args.path), *args.args]
    sys.path.insert(0, str(args.path.resolve().parent))
    try:
        runpy.run_path(str(args.path), run_name="__main__")
    except SystemExit as stop:
        return exit_status(stop)
    except Exception:  # noqa: BLE001 - a failed job, with its traceback in the rule's log
        logging.getLogger("flops_fit").exception("%s failed", args.path.name)
        return 1
    return 0
