"""``flops-fit train``: train one run of the runs table (what the workflow's train rule calls).

It runs :func:`flops_fit.pipeline.train_step` (the user's model, data and loss built from the
validated config, then the training engine :mod:`flops_fit.training`) and adds only the process
concerns: arguments, logging to a file, and the exit status: 0 for a finished run (diverged
included), and :data:`~flops_fit.training.stopping.EXIT_RETRY` (75) for a run stopped by
SIGTERM/SIGUSR1 after writing its checkpoint, a failed job that Snakemake's ``retries`` reruns from
that checkpoint. Under ``torchrun`` (several processes per run)
rank 0 alone writes the log file; the other ranks print only warnings and errors.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from flops_fit.paths import Results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Results().validated, help="validated config")
    parser.add_argument("--runs", type=Path, default=Results().runs_table, help="the runs table")
    parser.add_argument("--run-id", required=True, help="run_id of the row to train")
    parser.add_argument("--out-dir", type=Path, help="where metrics.json and curve.tsv go (default results/runs/RUN_ID)")
    parser.add_argument(
        "--checkpoint-dir", type=Path, help="resumable checkpoints; not a workflow output (default results/checkpoints/RUN_ID)"
    )
    parser.add_argument(
        "--branch-from", type=Path, default=None,
        help="a cooldown run's branch checkpoint directory (sweep.reuse: branches; results/stable/SID/stepK)",
    )
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads of the whole job, shared by its processes under torchrun (default: torch's choice)",
    )
    # not "--log": torchrun reads abbreviated options anywhere on its command line, and --log is
    # ambiguous there (--log-dir, --logs-specs), so `torchrun -m flops_fit train --log F` fails
    parser.add_argument("--log-file", type=Path, default=None, help="also write the progress log here (rank 0)")


def main(args: argparse.Namespace) -> int:
    from flops_fit.logs import setup
    from flops_fit.pipeline import train_step
    from flops_fit.training.distributed import launched
    from flops_fit.training.stopping import EXIT_RETRY, Interrupted, ignore_repeated_stops

    ignore_repeated_stops()
    ranks = launched()
    setup(args.log_file if ranks.is_main else None).setLevel(logging.INFO if ranks.is_main else logging.WARNING)
    log = logging.getLogger("flops_fit.training")
    threads = max(1, args.threads // ranks.world_size) if args.threads else None
    try:
        metrics = train_step(
            args.config, args.runs, args.run_id,
            run_dir=args.out_dir or Results().run_dir(args.run_id),
            checkpoint_dir=args.checkpoint_dir or Results().checkpoint_dir(args.run_id),
            threads=threads, log=log, branch_dir=args.branch_from,
        )
    except Interrupted as stop:
        if ranks.is_main:
            log.warning("%s; exiting with status %d so that the job is retried", stop, EXIT_RETRY)
        return EXIT_RETRY
    log.info("wrote metrics for %s: %s", metrics["run_id"], metrics["status"])
    return 0  # a diverged run is a result (the fit drops it with a warning), not a failed job
