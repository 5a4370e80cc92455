"""validate rule: import and check the model, dataset and loss named in config, before any training."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail, setup
from flops_fit.pipeline import validate_step

log = setup(snakemake.log[0])
try:
    summary = validate_step(snakemake.params.config, snakemake.output[0])
except (ConfigError, TypeError, ValueError) as error:
    fail(log, "validate", error)
log.info("validated: %s", summary)
