"""plan rule: every planned run (the last wave's cumulative table), for the fit and the report."""

from flops_fit.logs import setup
from flops_fit.pipeline import plan_step, read_validated

log = setup(snakemake.log[0])
config = read_validated(snakemake.input.config)
table, notes = plan_step(config, snakemake.input.wave, snakemake.params.runs_dir, snakemake.output.runs,
                         snakemake.input.designs, snakemake.output.design)
for note in notes:
    log.warning(note)
log.info("%d planned runs:\n%s", len(table), table.to_string(index=False))
