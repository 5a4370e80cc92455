"""place checkpoint: the runs table after one placement wave (cumulative)."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail, setup
from flops_fit.pipeline import place_step, read_validated

log = setup(snakemake.log[0])
wave = int(snakemake.wildcards.wave)
try:
    table, warnings = place_step(
        read_validated(snakemake.input.config), wave, snakemake.input.lr, snakemake.input.get("previous"),
        snakemake.params.runs_dir, snakemake.output.runs, snakemake.output.design,
        snakemake.input.get("designs", []),
    )
except (ConfigError, TypeError, ValueError) as error:
    fail(log, f"placement wave {wave}", error)
for warning in warnings:
    log.warning(warning)
new = table[table["wave"] == wave]
log.info("wave %d placed %d runs:\n%s", wave, len(new), new.to_string(index=False) if len(new) else "(none)")
