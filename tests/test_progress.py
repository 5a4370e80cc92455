"""Progress of find_optimal's sweep: counts, the FLOPs-based ETA, the bar, log lines visible by default."""

from __future__ import annotations

import io
import logging

from flops_fit.progress import Bar, LogLines, SweepProgress, duration, sweep_progress, visible_info


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self):
        self.shown: list[tuple[str, str, float]] = []
        self.closed = False

    def show(self, line: str, event: str, fraction: float) -> None:
        self.shown.append((line, event, fraction))

    def close(self) -> None:
        self.closed = True


def test_eta_is_the_flops_left_at_the_measured_rate():
    clock, shown = Clock(), Recorder()
    progress = SweepProgress({"a": 1e10, "b": 1e10, "c": 3e10, "d": 3e10}, shown, clock)
    progress.kept("a")
    assert progress.eta_seconds() is None  # a kept run says nothing about speed
    progress.started("b")
    clock.now = 10.0
    progress.finished("b", {"eval_loss": 3.25, "status": "ok"})
    assert progress.eta_seconds() == 60.0  # 6e10 FLOPs left at 1e9 FLOP/s
    assert shown.shown[-1] == ("run 2/4 b: eval loss 3.2500 in 10 s, ETA 1 min 00 s", "finished", 0.5)
    progress.started("c")
    assert shown.shown[-1][0] == "run 3/4 training c, ETA 1 min 00 s"
    clock.now = 40.0
    progress.finished("c", {"eval_loss": None, "status": "diverged"})
    assert shown.shown[-1][0] == "run 3/4 c: diverged in 30 s, ETA 30 s"
    progress.close()
    assert shown.shown[-1][0] == "3/4 runs done: 2 trained in 40 s, 1 already trained" and shown.closed


def test_a_terminal_gets_a_bar_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = sweep_progress({"a": 1.0, "b": 1.0}, True, logging.getLogger("flops_fit"), stream)
    progress.kept("a")
    progress.close()
    text = stream.getvalue()
    assert isinstance(progress._display, Bar)
    assert "\r\033[K[############............] run 1/2 a: already trained" in text and text.endswith("\n")


def test_elsewhere_each_finished_run_is_a_log_line(caplog):
    caplog.set_level(logging.INFO, logger="flops_fit")
    progress = sweep_progress({"a": 1.0}, True, logging.getLogger("flops_fit"), io.StringIO())
    assert isinstance(progress._display, LogLines)
    progress.started("a")  # no line: it would double the lines without news
    progress.finished("a", {"eval_loss": 2.0})
    assert [r.getMessage() for r in caplog.records] == ["run 1/1 a: eval loss 2.0000 in 0 s"]


def test_progress_false_shows_nothing(caplog):
    caplog.set_level(logging.INFO, logger="flops_fit")
    stream = io.StringIO()
    progress = sweep_progress({"a": 1.0}, False, logging.getLogger("flops_fit"), stream)
    progress.kept("a")
    progress.close()
    assert not caplog.records and not stream.getvalue()


def test_info_lines_reach_stderr_when_logging_is_not_configured(capsys):
    logger = logging.getLogger("unconfigured_progress_test")
    logger.propagate = False  # no handlers anywhere up, as in a fresh script or notebook
    with visible_info(logger):
        logger.info("run 1/2 shown")
        logger.getChild("training").info("step 1/60 hidden")
        logger.getChild("training").warning("run diverged shown")
    logger.info("after the call: not shown")
    assert capsys.readouterr().err.splitlines() == [
        "unconfigured_progress_test: run 1/2 shown",
        "unconfigured_progress_test.training: run diverged shown",
    ]
    assert not logger.handlers and logger.level == logging.NOTSET


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.4, 42, 185, 3720)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]
