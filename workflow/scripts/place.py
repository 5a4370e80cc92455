"""place checkpoint: the runs table after one placement wave (cumulative)."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail
from flops_fit.pipeline import place_step, read_validated
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config", "lr", "runs_dir",
    wave={"type": int, "help": "the wave to place"},
    previous={"default": None, "help": "the previous wave's table (none for wave 0)"},
    runs="the wave's cumulative table to write",
    design="the wave's design record to write",
    designs={"nargs": "*", "default": [], "help": "the earlier waves' design records (a precision sweep's stall)"},
)
try:
    table, warnings = place_step(
        read_validated(args.config), args.wave, args.lr, args.previous, args.runs_dir, args.runs, args.design,
        args.designs,
    )
except (ConfigError, TypeError, ValueError) as error:
    fail(log, f"placement wave {args.wave}", error)
for warning in warnings:
    log.warning(warning)
new = table[table["wave"] == args.wave]
log.info("wave %d placed %d runs:\n%s", args.wave, len(new), new.to_string(index=False) if len(new) else "(none)")
