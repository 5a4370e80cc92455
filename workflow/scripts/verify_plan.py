"""verify_plan checkpoint: the recommended size and its neighbours at each verify budget, planned with the
sweep's recipe."""

from flops_fit.errors import ConfigError
from flops_fit.logs import fail
from flops_fit.pipeline import read_validated, verify_plan_step
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "config", "fit", "recommendations", "lr",
    budgets={"type": float, "nargs": "*", "default": [], "help": "verify.budgets (the rule's params)"},
    sizes={"type": int, "help": "verify.sizes (the rule's params)"},
    runs="the verification runs table to write",
)
try:
    table, notes = verify_plan_step(
        read_validated(args.config), args.budgets, args.sizes, args.fit, args.recommendations, args.lr, args.runs,
    )
except (ConfigError, ValueError) as error:
    fail(log, "verify_plan", error)
for note in notes:
    log.warning(note)
log.info("planned %d verification run(s):\n%s", len(table), table.to_string(index=False) if len(table) else "(none)")
