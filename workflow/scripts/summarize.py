"""summarize rule: the summary page of the report and the runs table with each run's outcome."""

from flops_fit.pipeline import chance_loss, read_validated, summarize_step
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config", "fit", "recommendations", "runs_dir",
    runs="runs.tsv",
    calibration="lr_calibration.json",
    page="the summary page to write",
    table="the report's runs table to write",
)
summarize_step(args.fit, args.recommendations, args.runs, args.runs_dir, args.calibration, args.page, args.table,
               chance_loss(read_validated(args.config)))
log.info("wrote %s and %s", args.page, args.table)
