"""verify_plan checkpoint: the recommended size and its neighbours at each verify budget, planned with the
sweep's recipe."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail, setup
from flops_fit.pipeline import read_validated, verify_plan_step

log = setup(snakemake.log[0])
try:
    table, notes = verify_plan_step(
        read_validated(snakemake.input.config), snakemake.params.budgets, snakemake.params.sizes, snakemake.input.fit,
        snakemake.input.recommendations, snakemake.input.lr, snakemake.output.runs,
    )
except (ConfigError, ValueError) as error:
    fail(log, "verify_plan", error)
for note in notes:
    log.warning(note)
log.info("planned %d verification run(s):\n%s", len(table), table.to_string(index=False) if len(table) else "(none)")
