"""calibrate rule: lr*(N) = c·N^x from the finished lr-calibration runs."""

from flops_fit.logs import fail, setup
from flops_fit.pipeline import calibrate_step

log = setup(snakemake.log[0])
try:
    law = calibrate_step(snakemake.config, snakemake.input.runs, snakemake.params.runs_dir, snakemake.output.law)
except ValueError as error:
    fail(log, "calibrate", error)
for warning in law.get("warnings", []):
    log.warning(warning)
if law["enabled"]:
    log.info("lr*(N) = %.4g · N^%.3f", law["coefficient"], law["exponent"])
else:
    log.info("lr calibration is off: the configured lr rule is used")
