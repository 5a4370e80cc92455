"""verify rule: the recommended run's observed loss against the law's prediction (table and page)."""

from pathlib import Path

from flops_fit.logs import setup
from flops_fit.verify import verify_step

log = setup(snakemake.log[0])
lines = verify_step(
    snakemake.input.fit, snakemake.input.recommendations, snakemake.input.runs, snakemake.params.runs_dir,
    snakemake.params.budgets, Path(snakemake.output.table).parent,
)
for line in lines:
    log.info(line)
