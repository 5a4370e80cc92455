"""plot rule: isoFLOP curves, optima against compute, loss curves."""

from flops_fit.logs import setup
from flops_fit.plotting import plot_all

log = setup(snakemake.log[0])
for path in plot_all(snakemake.input.fit, snakemake.input.table, snakemake.input.runs, snakemake.output.isoflops):
    log.info("wrote %s", path)
