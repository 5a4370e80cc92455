"""Stop a run cleanly when the scheduler asks: SIGTERM (time limit, preemption, ``scancel``) or SIGUSR1.

SLURM sends SIGTERM at a job's time limit and on preemption, then SIGKILL after ``KillWait``
seconds; ``sbatch --signal=TERM@N`` asks for it N seconds early. Without a handler a run loses every
step since its last periodic checkpoint. With :class:`StopRequests` installed the signal only sets a
flag; the loop finishes the step in progress, writes a checkpoint, and :func:`run_training` raises
:class:`Interrupted`, which ``flops-fit train`` turns into exit status :data:`EXIT_RETRY`: a failed
job, which Snakemake's ``retries`` (and the SLURM profile's) reruns, resuming from that step.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType, TracebackType

#: exit status of a run stopped by a signal after writing its checkpoint (sysexits' EX_TEMPFAIL: "try again")
EXIT_RETRY = getattr(os, "EX_TEMPFAIL", 75)
#: the signals that ask a run to stop: SLURM's time-limit/preemption signal and the usual ``--signal=USR1@N``
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Interrupted(Exception):
    """The run stopped on a signal at ``step``, its checkpoint written; rerun it to resume."""

    def __init__(self, run_id: str, step: int, signal_name: str) -> None:
        super().__init__(f"run {run_id} stopped by {signal_name} after step {step}; its checkpoint is written")
        self.run_id, self.step, self.signal_name = run_id, step, signal_name


#: the first stop signal any run of this process received (None: none yet). Once set the process is
#: stopping, and a later stop signal is a repeat of it (see :func:`ignore_repeated_stops`).
_first_stop: str | None = None


def ignore_repeated_stops() -> None:
    """For a process that is one run's job (``flops-fit train`` and ``stable``): a stop signal that
    arrives outside :class:`StopRequests` ends the process as it would without a handler (status
    128 + N), unless a run of this process has already taken one: then it is a repeat and is ignored,
    so that the stopping run still logs its stop and exits :data:`EXIT_RETRY`. Repeats are normal:
    SLURM signals every process of a job step, and a run in the training worker also gets the signal
    its job relays and the one its stopping worker sends; without this the second one, landing after
    the run's handlers were restored, killed it with 143 between its checkpoint and its exit status.
    Once stopping, the signals are ignored outright (``SIG_IGN`` outlives the interpreter's shutdown,
    which resets Python-level handlers)."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _end_unless_stopping)


def _end_unless_stopping(signum: int, frame: FrameType | None) -> None:
    if _first_stop is None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


class StopRequests:
    """While entered, the stop signals set :attr:`received` instead of ending the process.

    Signal handlers can only be installed from the main thread; elsewhere (a run started from a
    worker thread) this is a no-op and the signals keep their previous behaviour. The previous
    handlers are restored on exit, so ``run_training`` called from a library leaves no trace.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.received: str | None = None  #: name of the first stop signal received
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            global _first_stop
            self.received = name
            _first_stop = _first_stop or name
            self.log.warning("received %s: finishing the current step, then writing a checkpoint and stopping", name)

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            if handler is _end_unless_stopping and _first_stop is not None:
                handler = signal.SIG_IGN  # the process is stopping: a repeat must not change its exit status
            signal.signal(sig, handler)
        self._previous.clear()
