"""Runs that did not learn: a finished run whose held-out loss stayed where it started.

A model too small for the task, or trained at an lr far too high or too low, can finish ``ok`` with a
loss that never left its initial value (or chance level: ln K for K balanced classes). Such a point
measures the initialization, not what the size reaches at its budget: fitted, it bends the isoFLOP
profile; in the lr calibration, its flat losses hand out a "best" lr chosen by noise.

**The test.** A run is ``no_learning`` when its final eval loss is above ``NO_LEARNING_RATIO`` (0.98)
times its initial loss, or times chance level: it improved by less than 2 %. Chance is ``fit.chance_loss``
when the user gives it, else the run's own ``chance_eval_loss`` (the eval loss of the best constant
prediction, measured at initialization: :mod:`flops_fit.training.chance`). Both references matter: a
model initialised above chance that only learns the label marginal falls far from its start and sits
at chance.
Eval-loss noise between seeds is typically under 1 %, so a 2 % fall is beyond noise; and a run that learned, however slowly, and fell more than 2 % is kept
by construction. A run that fell less than 2 % over its whole budget is, for the fit, indistinguishable
from its initialization, so leaving it out loses no information about its size.

**The initial loss**, in order: ``initial_eval_loss`` of ``metrics.json`` (the eval loss at
initialization, measured once before the first step since this version and kept by resumes), else the
train loss of the first step in ``curve.tsv`` (measured on the first batch before the first update, so
also a loss at initialization: older metrics and cooldowns branched off a stable run), else none: the
check against the initial loss is skipped (the chance level, if given, still applies).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

#: a run is flat when final eval loss > this × its initial loss (or chance level): < 2 % improvement
NO_LEARNING_RATIO = 0.98


def _finite(value: object) -> float | None:
    try:
        value = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def initial_loss(metrics: dict, run_dir: str | Path | None = None) -> tuple[float | None, str]:
    """(the run's loss at initialization, what it is) or (None, "") when neither record has it."""
    value = _finite(metrics.get("initial_eval_loss"))
    if value is not None:
        return value, "initial eval loss"
    curve = Path(run_dir) / "curve.tsv" if run_dir is not None else None
    if curve is not None and curve.exists():
        lines = curve.read_text().splitlines()
        if len(lines) >= 2:
            header, first = lines[0].split("\t"), lines[1].split("\t")
            if "train_loss" in header and len(first) == len(header):
                value = _finite(first[header.index("train_loss")])
                if value is not None:
                    return value, "first-step train loss"
    return None, ""


def no_learning(metrics: dict, run_dir: str | Path | None = None, chance: float | None = None,
                ratio: float = NO_LEARNING_RATIO) -> str | None:
    """Why a finished (``ok``) run counts as not having learned, or None (it learned, or it cannot be told)."""
    if metrics.get("status") != "ok":
        return None
    final = _finite(metrics.get("eval_loss"))
    if final is None or final <= 0:
        return None
    start, what = initial_loss(metrics, run_dir)
    if _finite(chance) is not None:
        level, level_name = _finite(chance), "chance level (fit.chance_loss)"
    else:
        level, level_name = _finite(metrics.get("chance_eval_loss")), "chance level (best constant prediction)"
    for reference, name in ((start, what), (level, level_name)):
        if reference is not None and reference > 0 and final > ratio * reference:
            return (f"its eval loss {final:.4g} stayed within {1 - ratio:.0%} of its {name} {reference:.4g} "
                    "(no learning)")
    return None


def flat_runs(run_ids, runs_dir: str | Path, chance: float | None = None) -> dict[str, str]:
    """run id → why it did not learn, for the finished runs among ``run_ids`` that did not learn."""
    flat = {}
    for run_id in run_ids:
        path = Path(runs_dir) / str(run_id) / "metrics.json"
        if path.exists():
            reason = no_learning(json.loads(path.read_text()), path.parent, chance)
            if reason:
                flat[str(run_id)] = reason
    return flat
