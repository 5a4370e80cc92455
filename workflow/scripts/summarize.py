"""summarize rule: the summary page of the report and the runs table with each run's outcome."""

from flops_fit.logs import setup
from flops_fit.pipeline import summarize_step

log = setup(snakemake.log[0])
summarize_step(
    snakemake.input.fit, snakemake.input.recommendations, snakemake.input.runs, snakemake.params.runs_dir,
    snakemake.input.calibration, snakemake.output.page, snakemake.output.runs,
)
log.info("wrote %s and %s", snakemake.output.page, snakemake.output.runs)
