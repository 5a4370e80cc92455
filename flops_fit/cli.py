"""`flops-fit` command line: one subcommand per pipeline step.

Each subcommand lives next to the code it drives and exposes ``add_arguments(parser)`` and
``main(args) -> int``; this module only wires them together, so that the workflow's rules and a
user at a shell run exactly the same code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("flops_fit.training.cli", "train one planned run (used by the workflow's train rule)"),
    "fit": ("flops_fit.fitting.cli", "fit scaling laws to a table of (N, D, loss) runs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flops-fit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return importlib.import_module(args._module).main(args)


if __name__ == "__main__":
    sys.exit(main())
