"""calibration_plan checkpoint: the lr-calibration runs at the smallest budget (none when switched off)."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail, setup
from flops_fit.pipeline import calibration_plan_step, read_validated

log = setup(snakemake.log[0])
try:
    table, warnings = calibration_plan_step(read_validated(snakemake.input[0]), snakemake.output.runs)
except (ConfigError, TypeError, ValueError) as error:
    fail(log, "calibration_plan", error)
for warning in warnings:
    log.warning(warning)
log.info("planned %d lr-calibration runs:\n%s", len(table), table.to_string(index=False))
