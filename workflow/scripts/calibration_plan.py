"""calibration_plan checkpoint: the lr-calibration runs at the smallest budget (none when switched off)."""

import os

from flops_fit.cost import CORES_ENV, RUN_THREADS_ENV
from flops_fit.errors import ConfigError
from flops_fit.logs import fail, setup
from flops_fit.pipeline import calibration_plan_step, read_validated

log = setup(snakemake.log[0])
try:
    table, warnings = calibration_plan_step(
        read_validated(snakemake.input[0]), snakemake.output.runs, snakemake.output.cost,
        # a run's threads and Snakemake's cores (workflow/rules/common.smk): execution, not identity
        int(os.environ.get(RUN_THREADS_ENV, "1")), int(os.environ.get(CORES_ENV, "1")),
    )
except (ConfigError, TypeError, ValueError) as error:
    fail(log, "calibration_plan", error)
for warning in warnings:
    (log.info if warning.startswith("cost estimate:") else log.warning)(warning)
log.info("planned %d lr-calibration runs:\n%s", len(table), table.to_string(index=False))
