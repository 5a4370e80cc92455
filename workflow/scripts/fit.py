"""fit rule: scaling laws from the finished runs (diverged runs are excluded with a warning)."""

from pathlib import Path

from flops_fit.logs import setup
from flops_fit.pipeline import fit_step

log = setup(snakemake.log[0])
result = fit_step(
    snakemake.config, snakemake.input.runs, Path(snakemake.input.metrics[0]).parents[1],
    Path(snakemake.output.fit).parent,
)
for warning in result["warnings"]:
    log.warning(warning)
iso = result["isoflop"]
log.info("N* ∝ C^%s, D* ∝ C^%s (Approach 2)", iso.get("a"), iso.get("b"))
