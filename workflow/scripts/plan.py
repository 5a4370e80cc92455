"""plan rule: every planned run (the last wave's cumulative table), for the fit and the report."""

from flops_fit.pipeline import plan_step, read_validated
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config", "runs_dir",
    wave="the last wave's cumulative table",
    designs={"nargs": "+", "help": "every wave's design record, in order"},
    runs="runs.tsv to write",
    design="the plan's design record to write",
)
table, notes = plan_step(read_validated(args.config), args.wave, args.runs_dir, args.runs, args.designs, args.design)
for note in notes:
    log.warning(note)
log.info("%d planned runs:\n%s", len(table), table.to_string(index=False))
