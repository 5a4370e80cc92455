"""validate rule: import and check the model, dataset and loss named in config, before any training."""

import json

from flops_fit.errors import ConfigError
from flops_fit.logs import fail
from flops_fit.pipeline import validate_step
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__,
    config={"type": json.loads, "help": "the sweep config as JSON (the rule's params)"},
    out="validated.json",
)
try:
    summary = validate_step(args.config, args.out)
except (ConfigError, TypeError, ValueError) as error:
    fail(log, "validate", error)
log.info("validated: %s", summary)
