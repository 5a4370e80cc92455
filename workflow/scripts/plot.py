"""plot rule: isoFLOP curves, optima against compute, loss curves (PNG + SVG)."""

from flops_fit.pipeline import plot_step
from flops_fit.script_cli import rule_args

args, log = rule_args(
    __doc__, "fit", "runs_dir",
    table="the fitted runs table",
    runs="runs.tsv",
    out_dir="where the figures go",
)
for path in plot_step(args.fit, args.table, args.runs, args.runs_dir, args.out_dir):
    log.info("wrote %s", path)
