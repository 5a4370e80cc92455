"""``flops-fit stable``: train one stable segment of a shared stable run (the workflow's stable rule).

With ``sweep.reuse: branches`` the runs of a size are cooldowns branched off one stable (constant-lr)
run; this command trains that run from its previous branch checkpoint (or from the initial weights)
to the next branch point and writes the branch checkpoint the cooldowns start from
(:func:`flops_fit.pipeline.stable_step`). The exit status is as for ``flops-fit train``: 0 when the
checkpoint is written, :data:`~flops_fit.training.stopping.EXIT_RETRY` (75) after SIGTERM/SIGUSR1 with
a resumable state saved, so that Snakemake's ``retries`` resumes the segment. One process (no DDP).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from flops_fit.paths import Results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Results().validated, help="validated config")
    parser.add_argument("--runs", type=Path, required=True, help="the plan table that first planned this segment")
    parser.add_argument("--stable-id", required=True, help="the stable run (the runs table's branch_of)")
    parser.add_argument("--step", type=int, required=True, help="the branch step this segment trains up to")
    parser.add_argument("--start-from", type=Path, default=None,
                        help="directory of the previous branch checkpoint (omit for the first segment)")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the branch checkpoint goes")
    parser.add_argument("--checkpoint-dir", type=Path, required=True, help="resumable state while it trains")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--log-file", type=Path, default=None, help="also write the progress log here")


def main(args: argparse.Namespace) -> int:
    from flops_fit.logs import setup
    from flops_fit.pipeline import stable_step
    from flops_fit.training.stopping import EXIT_RETRY, Interrupted, ignore_repeated_stops

    ignore_repeated_stops()
    setup(args.log_file).setLevel(logging.INFO)
    log = logging.getLogger("flops_fit.training")
    try:
        stable_step(args.config, args.runs, args.stable_id, args.step, args.start_from, args.out_dir,
                    args.checkpoint_dir, args.threads, log)
    except Interrupted as stop:
        log.warning("%s; exiting with status %d so that the job is retried", stop, EXIT_RETRY)
        return EXIT_RETRY
    return 0
