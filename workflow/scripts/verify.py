"""verify rule: the verification runs' observed losses against the law's predictions, and whether the
recommended size is the observed optimum (table and page)."""

from flops_fit.pipeline import verify_step
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "fit", "recommendations", "runs_dir",
    runs="the verification runs table",
    budgets={"type": float, "nargs": "*", "default": [], "help": "verify.budgets (the rule's params)"},
    table="the verification table to write",
    page="the verification page to write",
)
for line in verify_step(args.fit, args.recommendations, args.runs, args.runs_dir, args.budgets, args.table, args.page):
    log.info(line)
