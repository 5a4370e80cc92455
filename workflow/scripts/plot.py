"""plot rule: isoFLOP curves, optima against compute, loss curves (PNG + SVG)."""

from pathlib import Path

from flops_fit.logs import setup
from flops_fit.pipeline import plot_step

log = setup(snakemake.log[0])
out_dir = Path(snakemake.output.isoflops).parent
for path in plot_step(snakemake.input.fit, snakemake.input.table, snakemake.input.runs, snakemake.params.runs_dir,
                      out_dir):
    log.info("wrote %s", path)
