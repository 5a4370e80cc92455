"""calibration_plan checkpoint: the lr-calibration runs at the smallest budget (none when switched off)."""

import os

from flops_fit.cost import CORES_ENV, RUN_THREADS_ENV
from flops_fit.errors import ConfigError
from flops_fit.logs import fail
from flops_fit.pipeline import calibration_plan_step, read_validated
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config",
    runs="the calibration runs table to write",
    cost="the cost estimate to write",
)
try:
    table, warnings = calibration_plan_step(
        read_validated(args.config), args.runs, args.cost,
        # a run's threads and Snakemake's cores (workflow/rules/common.smk): execution, not identity
        int(os.environ.get(RUN_THREADS_ENV, "1")), int(os.environ.get(CORES_ENV, "1")),
    )
except (ConfigError, TypeError, ValueError) as error:
    fail(log, "calibration_plan", error)
for warning in warnings:
    (log.info if warning.startswith("cost estimate:") else log.warning)(warning)
log.info("planned %d lr-calibration runs:\n%s", len(table), table.to_string(index=False))
