"""Progress of :func:`flops_fit.find_optimal`'s sweep: runs done of total, with an ETA.

A sweep of minutes that prints nothing looks hung. On a terminal a one-line bar is redrawn on stderr;
anywhere else (a notebook, a redirected script, a log file) each finished run is one INFO line of the
``flops_fit`` logger. The ETA is the FLOPs still to train divided by the FLOPs per second measured on
the runs trained so far: runs of a sweep differ in FLOPs (one budget is 10x another), so a count of
runs would misjudge it.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

_BAR_WIDTH = 24


class _Display(Protocol):
    def show(self, line: str, event: str, fraction: float) -> None: ...

    def close(self) -> None: ...


class SweepProgress:
    """Counts the runs of a sweep as they are kept or trained and shows each step on a display."""

    def __init__(self, run_flops: Mapping[str, float], display: _Display, clock: Callable[[], float] = time.monotonic):
        self._flops = dict(run_flops)
        self._display = display
        self._clock = clock
        self._done = 0
        self._kept = 0
        self._trained_flops = 0.0
        self._train_seconds = 0.0
        self._left_flops = sum(self._flops.values())
        self._started_at = clock()

    def add(self, run_flops: Mapping[str, float]) -> None:
        """More runs to count: an adaptive sweep learns its next runs only as each wave is placed."""
        new = {run_id: flops for run_id, flops in run_flops.items() if run_id not in self._flops}
        self._flops.update(new)
        self._left_flops += sum(new.values())

    @property
    def total(self) -> int:
        return len(self._flops)

    def eta_seconds(self) -> float | None:
        """Seconds left at the FLOPs rate measured so far; None before a run has been trained."""
        if self._trained_flops <= 0 or self._train_seconds <= 0:
            return None
        return self._left_flops * self._train_seconds / self._trained_flops

    def kept(self, run_id: str) -> None:
        """``run_id`` already has this plan's metrics: counted as done, not as training time."""
        self._advance(run_id)
        self._kept += 1
        self._show(f"{self._count()} {run_id}: already trained, keeping its result", "kept")

    def started(self, run_id: str) -> None:
        self._started_at = self._clock()
        self._show(f"{self._count(running=True)} training {run_id}{self._eta_text()}", "started")

    def finished(self, run_id: str, metrics: Mapping[str, Any]) -> None:
        seconds = self._clock() - self._started_at
        self._trained_flops += self._flops[run_id]
        self._train_seconds += seconds
        self._advance(run_id)
        loss = metrics.get("eval_loss")
        outcome = f"eval loss {loss:.4f}" if isinstance(loss, float) else str(metrics.get("status", "done"))
        self._show(f"{self._count()} {run_id}: {outcome} in {duration(seconds)}{self._eta_text()}", "finished")

    def close(self) -> None:
        trained = self._done - self._kept
        self._show(
            f"{self._done}/{self.total} runs done: {trained} trained in {duration(self._train_seconds)}, "
            f"{self._kept} already trained", "closed",
        )
        self._display.close()

    def _show(self, line: str, event: str) -> None:
        self._display.show(line, event, self._done / max(self.total, 1))

    def _advance(self, run_id: str) -> None:
        self._done += 1
        self._left_flops -= self._flops[run_id]

    def _count(self, running: bool = False) -> str:
        return f"run {self._done + running}/{self.total}"

    def _eta_text(self) -> str:
        eta = self.eta_seconds()
        if eta is None or self._done == self.total:
            return ""
        return f", ETA {duration(eta)}"


class Bar:
    """A one-line bar redrawn in place on a terminal stream."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def show(self, line: str, event: str, fraction: float) -> None:
        filled = round(_BAR_WIDTH * fraction)
        text = f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {line}"
        width = shutil.get_terminal_size().columns - 1  # a wrapped line could not be redrawn in place
        self._stream.write(f"\r\033[K{text[:width]}")
        self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


class LogLines:
    """One INFO line per kept or finished run (a start line would double them without news)."""

    def __init__(self, logger: logging.Logger):
        self._logger = logger

    def show(self, line: str, event: str, fraction: float) -> None:
        if event != "started":
            self._logger.info(line)

    def close(self) -> None:
        pass


class _Quiet:
    """``progress=False``: nothing is shown."""

    def show(self, line: str, event: str, fraction: float) -> None:
        pass

    def close(self) -> None:
        pass


def sweep_progress(run_flops: Mapping[str, float], enabled: bool, logger: logging.Logger,
                   stream: TextIO | None = None) -> SweepProgress:
    """The progress of a sweep: a bar when ``stream`` (default stderr) is a terminal, else log lines."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return SweepProgress(run_flops, _Quiet())
    on_terminal = getattr(stream, "isatty", lambda: False)()
    return SweepProgress(run_flops, Bar(stream) if on_terminal else LogLines(logger))


@contextmanager
def visible_info(logger: logging.Logger) -> Iterator[None]:
    """Show ``logger``'s own INFO lines (and warnings from below it) on stderr when no logging is configured.

    Python drops INFO records while no handler is configured (only warnings reach stderr, through
    ``logging.lastResort``), so a script or notebook would see no progress at all. For the duration of
    the call a handler on the current ``sys.stderr`` (a notebook's own) shows them; the training loop's
    per-step lines (child loggers, INFO) stay hidden. Whoever configured logging keeps their set-up as is.
    """
    if logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(lambda record: record.name == logger.name or record.levelno >= logging.WARNING)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: short enough for a bar, exact enough for an ETA."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
