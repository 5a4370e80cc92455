"""summarize rule: the summary page of the report and the runs table with each run's outcome."""

from pathlib import Path

from flops_fit.logs import setup
from flops_fit.planning import read_runs_table
from flops_fit.report_page import write_summary

log = setup(snakemake.log[0])
write_summary(
    snakemake.input.fit, snakemake.input.recommendations, read_runs_table(snakemake.input.runs),
    Path(snakemake.input.metrics[0]).parents[1], snakemake.output.page, snakemake.output.runs,
    snakemake.input.calibration,
)
log.info("wrote %s and %s", snakemake.output.page, snakemake.output.runs)
