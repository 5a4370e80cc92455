"""calibrate rule: lr*(N) = c·N^x from the finished lr-calibration runs."""

from flops_fit.logs import fail
from flops_fit.pipeline import calibrate_step, read_validated
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config", "runs_dir",
    runs="the calibration runs table",
    law="lr_calibration.json to write",
)
try:
    law = calibrate_step(read_validated(args.config), args.runs, args.runs_dir, args.law)
except ValueError as error:
    fail(log, "calibrate", error)
for warning in law.get("warnings", []):
    log.warning(warning)
if law["enabled"]:
    log.info("lr*(N) = %.4g · N^%.3f", law["coefficient"], law["exponent"])
else:
    log.info("lr calibration is off: the configured lr rule is used")
