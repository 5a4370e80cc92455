"""fit rule: scaling laws from the finished runs (diverged runs are excluded with a warning)."""

from flops_fit.logs import setup
from flops_fit.pipeline import fit_step

log = setup(snakemake.log[0])
result = fit_step(
    snakemake.config, snakemake.input.runs, snakemake.params.runs_dir, snakemake.output.fit,
    snakemake.output.summary, snakemake.output.table, snakemake.input.design,
)
for warning in result.warnings:
    log.warning(warning)
log.info("N* ∝ C^%s, D* ∝ C^%s (Approach 2)", result.isoflop.a, result.isoflop.b)
if result.design and result.design["outlook"]:
    log.info(result.design["outlook"]["message"])
