"""plot rule: isoFLOP curves, optima against compute, loss curves (PNG + SVG)."""

from pathlib import Path

from flops_fit.logs import setup
from flops_fit.plotting.suite import plot_all

log = setup(snakemake.log[0])
out_dir = Path(snakemake.output.isoflops).parent
for path in plot_all(snakemake.input.fit, snakemake.input.table, snakemake.input.runs, out_dir):
    log.info("wrote %s", path)
