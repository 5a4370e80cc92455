"""``flops-fit train``: train one run of the runs table (what the workflow's train rule calls).

Building the user's model, data and loss from the validated config is the pipeline's job
(:func:`flops_fit.pipeline.build_training_job`); this module only adds the process concerns:
arguments, logging to a file, and the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("results/validated.json"), help="validated config")
    parser.add_argument("--runs", type=Path, default=Path("results/plan/runs.tsv"), help="the runs table")
    parser.add_argument("--run-id", required=True, help="run_id of the row to train")
    parser.add_argument("--out-dir", type=Path, help="where metrics.json and curve.tsv go (default results/runs/RUN_ID)")
    parser.add_argument(
        "--checkpoint-dir", type=Path, help="resumable checkpoints; not a workflow output (default results/checkpoints/RUN_ID)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--log", type=Path, default=None, help="also write the progress log to this file")


def _logger(log_path: Path | None) -> logging.Logger:
    log = logging.getLogger("flops_fit.training")
    log.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.propagate = False
    return log


def main(args: argparse.Namespace) -> int:
    from flops_fit.pipeline import build_training_job
    from flops_fit.training import run_training

    log = _logger(args.log)
    job = build_training_job(args.config, args.runs, args.run_id)
    settings = {**job["settings"], "threads": args.threads}
    metrics = run_training(
        job["run"],
        model=job["model"],
        train_data=job["train_data"],
        eval_data=job["eval_data"],
        loss_fn=job["loss_fn"],
        settings=settings,
        out_dir=args.out_dir or Path("results/runs") / args.run_id,
        checkpoint_dir=args.checkpoint_dir or Path("results/checkpoints") / args.run_id,
        log=log,
    )
    log.info("metrics: %s", metrics["status"])
    return 0  # a diverged run is a result (the fit drops it with a warning), not a failed job
