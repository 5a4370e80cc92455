"""verify rule: the verification runs' observed losses against the law's predictions, and whether the
recommended size is the observed optimum (table and page)."""

from flops_fit.logs import setup
from flops_fit.pipeline import verify_step

log = setup(snakemake.log[0])
lines = verify_step(
    snakemake.input.fit, snakemake.input.recommendations, snakemake.input.runs, snakemake.params.runs_dir,
    snakemake.params.budgets, snakemake.output.table, snakemake.output.page,
)
for line in lines:
    log.info(line)
