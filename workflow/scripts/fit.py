"""fit rule: scaling laws from the finished runs (diverged runs are excluded with a warning)."""

from flops_fit.logs import fail
from flops_fit.pipeline import TooFewRuns, fit_step, read_validated
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config", "runs_dir",
    runs="runs.tsv",
    fit="fit.json to write",
    summary="the fit's summary table to write",
    table="the fitted runs table to write",
    design="plan/design.json: the waves' decisions, for fit.json's design record",
)
try:
    result = fit_step(read_validated(args.config), args.runs, args.runs_dir, args.fit, args.summary, args.table,
                      args.design)
except TooFewRuns as error:  # which runs were left out and why, not a traceback
    fail(log, "fit", error)
for warning in result.warnings:
    log.warning(warning)
log.info("N* ∝ C^%s, D* ∝ C^%s (Approach 2)", result.isoflop.a, result.isoflop.b)
if result.design and result.design["outlook"]:
    log.info(result.design["outlook"]["message"])
