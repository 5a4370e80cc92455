"""`flops-fit` command line: the workflow's commands (train, stable, the rules' scripts) and ``fit``.

Each subcommand lives next to the code it drives and exposes ``add_arguments(parser)`` and
``main(args) -> int``; this module only dispatches, so the workflow's rules and a user at a shell run
exactly the same code. Only the chosen subcommand's module is imported (``flops-fit fit`` does not
pay for importing torch).

With ``FLOPS_FIT_WORKER=<idle seconds>`` in the environment (the workflow sets it from ``worker:``),
``flops-fit train``, ``flops-fit stable`` and ``flops-fit script`` run in a child of the warm worker
(:mod:`flops_fit.worker`) instead of importing torch in this process; that is decided here, before
any import, and a job falls back to its own process when no worker can be had.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("flops_fit.train_cli", "train one planned run (used by the workflow's train rule)"),
    "stable": ("flops_fit.stable_cli", "train one stable segment of a shared stable run (the workflow's stable rule)"),
    "script": ("flops_fit.script_cli", "run a rule's workflow/scripts/*.py (the workflow's other rules)"),
    "fit": ("flops_fit.fitting.cli", "fit scaling laws to a table of (N, D, loss) runs"),
    "worker": ("flops_fit.worker.server", "the warm worker: forks a process per job (started by the first job)"),
}
#: commands that may run in the warm worker
WORKER_COMMANDS = ("train", "stable", "script")


def usage() -> str:
    lines = ["usage: flops-fit COMMAND [options]   (flops-fit COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<8} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "FLOPS_FIT_WORKER=<idle seconds> runs train, stable and script in the warm worker (flops_fit/worker)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in SUBCOMMANDS:
        print(f"flops-fit: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if argv[0] in WORKER_COMMANDS:
        from flops_fit.worker.client import requested_idle_seconds, run_in_worker

        idle_seconds = requested_idle_seconds()
        if idle_seconds is not None:
            code = run_in_worker(argv, idle_seconds)
            if code is not None:
                return code
    module_name, help_text = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"flops-fit {argv[0]}", description=help_text)
    module.add_arguments(parser)
    return module.main(parser.parse_args(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
