"""`flops-fit` command line: the train rule's command and the fit of any table of runs.

Each subcommand lives next to the code it drives and exposes ``add_arguments(parser)`` and
``main(args) -> int``; this module only dispatches, so the workflow's rules and a user at a shell run
exactly the same code. Only the chosen subcommand's module is imported (``flops-fit fit`` does not
pay for importing torch).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("flops_fit.train_cli", "train one planned run (used by the workflow's train rule)"),
    "stable": ("flops_fit.stable_cli", "train one stable segment of a shared stable run (the workflow's stable rule)"),
    "fit": ("flops_fit.fitting.cli", "fit scaling laws to a table of (N, D, loss) runs"),
}


def usage() -> str:
    lines = ["usage: flops-fit COMMAND [options]   (flops-fit COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<8} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in SUBCOMMANDS:
        print(f"flops-fit: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, help_text = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"flops-fit {argv[0]}", description=help_text)
    module.add_arguments(parser)
    return module.main(parser.parse_args(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
