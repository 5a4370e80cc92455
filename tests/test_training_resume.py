"""Resume after SIGKILL: a killed training process picks up from its checkpoint and ends where an
uninterrupted run ends (same seed, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flops_fit.training import run_training
from training_support import Regression, Stream, eval_batches, loss_fn, mlp, run_row, settings

STEPS = 150
CHILD = """
import json, logging, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from flops_fit.training import run_training
from training_support import Regression, Stream, eval_batches, loss_fn, mlp, run_row, settings
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
model = mlp()
data = Stream(delay_s=0.0003) if {kind!r} == "iterable" else Regression(delay_s=0.0003)
run_training(run_row(model, steps={steps}), model=model, train_data=data, eval_data=eval_batches(), loss_fn=loss_fn,
             settings=settings(checkpoint={{"every_steps": 5}}), out_dir=Path({out!r}), checkpoint_dir=Path({ckpt!r}))
"""


def _child(kind: str, out: Path, ckpt: Path) -> subprocess.Popen:
    code = CHILD.format(tests=str(Path(__file__).parent), kind=kind, steps=STEPS, out=str(out), ckpt=str(ckpt))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("kind", ["map", "iterable"])
def test_sigkilled_run_resumes_and_matches_the_uninterrupted_run(tmp_path, kind):
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    proc = _child(kind, out, ckpt)
    deadline = time.monotonic() + 120
    while not (ckpt / "checkpoint.pt").exists():
        assert proc.poll() is None, f"the training process ended before its first checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint appeared within 120 s"
        time.sleep(0.02)
    time.sleep(0.05)  # let it train past the checkpoint, so the resume really repeats work
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before the kill; make it slower"

    proc = _child(kind, out, ckpt)
    _, log = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    assert "resumed from step" in log
    resumed = json.loads((out / "metrics.json").read_text())
    assert 0 < resumed["resumed_from_step"] < STEPS
    assert resumed["steps"] == STEPS and not ckpt.exists()

    model = mlp()
    data = Stream() if kind == "iterable" else Regression()
    whole = run_training(
        run_row(model, steps=STEPS), model=model, train_data=data, eval_data=eval_batches(), loss_fn=loss_fn,
        settings=settings(), out_dir=tmp_path / "whole", checkpoint_dir=tmp_path / "whole_ckpt",
    )
    assert whole["resumed_from_step"] is None
    assert resumed["final_train_loss"] == pytest.approx(whole["final_train_loss"], abs=1e-4)
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], abs=1e-4)
    assert (out / "curve.tsv").read_text() == (tmp_path / "whole" / "curve.tsv").read_text()
