"""recommend rule: the size-knob value, tokens and steps at each target budget (printed to the console)."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail, setup
from flops_fit.pipeline import read_validated, recommend_step
from flops_fit.recommend import lines

log = setup(snakemake.log[0])
try:
    table, warnings = recommend_step(
        read_validated(snakemake.input.config), snakemake.input.fit, snakemake.input.runs, snakemake.output[0]
    )
except (ConfigError, ValueError) as error:
    fail(log, "recommend", error)
for warning in warnings:
    log.warning(warning)
for line in lines(table) or ["no target_budgets in the config: nothing to recommend"]:
    log.info(line)
