"""plan checkpoint: the runs table (sizes per budget, tokens, batch, steps, lr, FLOPs)."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail, setup
from flops_fit.pipeline import plan_step, read_validated

log = setup(snakemake.log[0])
try:
    table, warnings = plan_step(read_validated(snakemake.input[0]), snakemake.output.runs)
except (ConfigError, TypeError, ValueError) as error:
    fail(log, "plan", error)
for warning in warnings:
    log.warning(warning)
log.info("planned %d runs:\n%s", len(table), table.to_string(index=False))
