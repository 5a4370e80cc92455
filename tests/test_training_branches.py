"""A cooldown branched off a stable run is the standalone WSD run of its plan (``sweep.reuse: branches``).

Same seed, data order and batch: the branched run's train losses, lrs and final eval loss equal those
of the run trained from step 0 with the ``wsd`` schedule, on CPU, to numerical tolerance.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from flops_fit.training import run_training, train_segment
from flops_fit.training.stopping import Interrupted
from flops_fit.training.schedule import decay_start, lr_at
from training_support import Regression, eval_batches, loss_fn, mlp, run_row, settings

STABLE_KEYS = ("size_param", "size", "params", "flops_per_token", "tokens_per_sample", "batch_size", "lr",
               "warmup_steps", "seed")


def _wsd(**overrides: object) -> dict:
    return settings(schedule={"kind": "wsd", "wsd_decay_fraction": 0.25, "wsd_decay_shape": "1-sqrt"}, **overrides)


def _curve(path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_a_cooldown_has_the_lr_of_the_standalone_wsd_run_at_every_step(shape):
    total, warmup, fraction = 90, 7, 0.2
    start = decay_start(total, warmup, fraction)
    kw = {"peak_lr": 2.0, "warmup_steps": warmup, "final_lr_fraction": 0.1}
    wsd = [lr_at(s, total_steps=total, kind="wsd", wsd_decay_fraction=fraction, wsd_decay_shape=shape, **kw)
           for s in range(total)]
    # the stable segment (constant kind, trained only to the branch point) then the cooldown's own schedule
    stable = [lr_at(s, total_steps=start, kind="constant", **kw) for s in range(start)]
    assert stable == wsd[:start]
    assert wsd[start] == 2.0 and wsd[start + 1] < 2.0  # the decay begins at the branch point
    assert wsd[-1] == pytest.approx(0.2)
    if shape == "1-sqrt":
        mid = start + (total - 1 - start) // 2
        progress = (mid - start) / (total - 1 - start)
        assert wsd[mid] == pytest.approx(2.0 * (0.1 + 0.9 * (1 - progress ** 0.5)))


def test_a_branched_run_equals_the_standalone_wsd_run(tmp_path):
    data, evals = Regression(), eval_batches()
    run = run_row(mlp(), steps=60, warmup_steps=5)
    stable = {k: run[k] for k in STABLE_KEYS}
    step = decay_start(60, 5, 0.25)
    # the standalone WSD run
    alone = run_training(run, model=mlp(), train_data=data, eval_data=evals, loss_fn=loss_fn, settings=_wsd(),
                         out_dir=tmp_path / "alone", checkpoint_dir=tmp_path / "ck_alone")
    # a stable run in two segments (an earlier branch point at step 20), then the cooldown from `step`
    first = train_segment(stable, start_from=None, end_step=20, model=mlp(), train_data=data, loss_fn=loss_fn,
                          settings=_wsd(), out_dir=tmp_path / "stable" / "step20", checkpoint_dir=tmp_path / "ck_s1")
    train_segment(stable, start_from=first.parent, end_step=step, model=mlp(), train_data=data, loss_fn=loss_fn,
                  settings=_wsd(), out_dir=tmp_path / "stable" / f"step{step}", checkpoint_dir=tmp_path / "ck_s2")
    branched = run_training({**run, "branch_of": "s", "branch_step": step}, model=mlp(seed=5), train_data=data,
                            eval_data=evals, loss_fn=loss_fn, settings=_wsd(), out_dir=tmp_path / "branched",
                            checkpoint_dir=tmp_path / "ck_b", branch_from=tmp_path / "stable" / f"step{step}",
                            branch_identity=stable)
    assert branched["eval_loss"] == pytest.approx(alone["eval_loss"], rel=1e-5)
    assert (branched["tokens"], branched["steps"], branched["flops"]) == (alone["tokens"], alone["steps"], alone["flops"])
    assert branched["resumed_from_step"] == step
    a, b = _curve(tmp_path / "alone" / "curve.tsv"), _curve(tmp_path / "branched" / "curve.tsv")
    assert [r[:3] for r in a] == [r[:3] for r in b]  # step, tokens, lr at every step
    assert [float(r[3]) for r in b] == pytest.approx([float(r[3]) for r in a], rel=1e-5)
    assert json.loads((tmp_path / "branched" / "metrics.json").read_text())["status"] == "ok"


def test_a_branch_checkpoint_of_another_stable_run_is_refused(tmp_path):
    data = Regression()
    run = run_row(mlp(), steps=30, warmup_steps=3)
    stable = {k: run[k] for k in STABLE_KEYS}
    train_segment({**stable, "lr": 0.5}, start_from=None, end_step=24, model=mlp(), train_data=data, loss_fn=loss_fn,
                  settings=_wsd(), out_dir=tmp_path / "stable", checkpoint_dir=tmp_path / "ck_s")
    with pytest.raises(ValueError, match="not its stable run's"):
        run_training({**run, "branch_of": "s", "branch_step": 24}, model=mlp(), train_data=data,
                     eval_data=eval_batches(), loss_fn=loss_fn, settings=_wsd(), out_dir=tmp_path / "b",
                     checkpoint_dir=tmp_path / "ck_b", branch_from=tmp_path / "stable", branch_identity=stable)


class _SignalAt(Regression):
    """The regression set, sending this process SIGTERM when sample ``at`` is first read (a preemption)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.sent = at, False

    def __getitem__(self, i: int):
        if i == self.at and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__getitem__(i)


def test_a_preempted_stable_segment_resumes_to_the_same_branch_checkpoint(tmp_path):
    run = run_row(mlp(), steps=40, warmup_steps=3)
    stable = {k: run[k] for k in STABLE_KEYS}
    common = {"end_step": 30, "loss_fn": loss_fn, "settings": _wsd(), "start_from": None}
    whole = train_segment(stable, model=mlp(), train_data=Regression(), out_dir=tmp_path / "whole",
                          checkpoint_dir=tmp_path / "ck_whole", **common)
    first_epoch = torch.randperm(256, generator=torch.Generator().manual_seed(0))  # the order seed 0 reads samples in
    data = _SignalAt(at=int(first_epoch[80]))  # read in step 11 of 30
    with pytest.raises(Interrupted):
        train_segment(stable, model=mlp(), train_data=data, out_dir=tmp_path / "split", checkpoint_dir=tmp_path / "ck",
                      **common)
    assert (tmp_path / "ck" / "checkpoint.pt").exists() and not (tmp_path / "split").exists()
    resumed = train_segment(stable, model=mlp(), train_data=data, out_dir=tmp_path / "split", checkpoint_dir=tmp_path / "ck",
                            **common)
    a, b = (torch.load(p, weights_only=True) for p in (whole, resumed))
    assert a["step"] == b["step"] == 30 and a["position"] == b["position"]
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], atol=1e-6), key
    assert not (tmp_path / "ck").exists()  # the resumable state goes once the branch checkpoint is written
