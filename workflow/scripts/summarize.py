"""summarize rule: the summary page of the report and the runs table with each run's outcome."""

from flops_fit.pipeline import summarize_step
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "fit", "recommendations", "runs_dir",
    runs="runs.tsv",
    calibration="lr_calibration.json",
    page="the summary page to write",
    table="the report's runs table to write",
)
summarize_step(args.fit, args.recommendations, args.runs, args.runs_dir, args.calibration, args.page, args.table)
log.info("wrote %s and %s", args.page, args.table)
