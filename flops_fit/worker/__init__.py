"""The warm worker: workflow jobs without per-job start-up.

A scaling sweep is mostly small runs, and a new Python process per run pays for importing torch,
flops_fit and torch's compiler stack (about 5.5 s on a 2-core CPU) before a run that may train for
one second. The worker is a fork server: one long-lived process imports all of that once, and each
``flops-fit train`` job (the train rule's command) asks it for a fresh child process, forked
from the warm parent, that trains the run. Every other rule that runs Python (validate, the planning
checkpoints, calibrate, fit, plot, recommend, summarize, verify) runs its script the same way
(``flops-fit script``, :mod:`flops_fit.script_cli`): a script job too starts in about 0.1 s.

The workflow is unchanged by it: one Snakemake job and one output per run, the job's exit status is
the run's (75 after a SIGTERM checkpoint, so ``retries`` resume), signals sent to the job reach the
run, and a child is a clean process (its own seeds, threads, signal handlers and log file), so a
run trains exactly as it would in a process of its own. The worker never builds the user's model,
data or loss itself: a child builds them, so nothing the user's code opens is shared between runs.

* :mod:`~flops_fit.worker.address`: which worker a job may use (a socket per code version and
  environment, so an edited flops_fit or another virtual environment never runs stale code).
* :mod:`~flops_fit.worker.server`: the fork server (``flops-fit worker``), started by the first job
  that needs it and gone after ``worker.idle_seconds`` without work.
* :mod:`~flops_fit.worker.client`: the job's side: connect (or start the worker), hand over the
  command line, the working directory, the environment and the standard streams, relay signals,
  return the exit status. When no worker can be had, the job runs in its own process as before.
"""
