"""recommend rule: the size-knob value, tokens and steps at each target budget (printed to the console)."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail
from flops_fit.pipeline import read_validated, recommend_step
from flops_fit.recommend import lines
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config", "fit",
    runs="runs.tsv",
    out="recommendations.tsv to write",
)
try:
    table, warnings = recommend_step(read_validated(args.config), args.fit, args.runs, args.out)
except (ConfigError, ValueError) as error:
    fail(log, "recommend", error)
for warning in warnings:
    log.warning(warning)
for line in lines(table) or ["no target_budgets in the config: nothing to recommend"]:
    log.info(line)
