"""The training loop on tiny real models: exact token budget, schedule, divergence, data kinds, eval."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

from flops_fit.training import run_training
from flops_fit.training.evaluation import evaluate
from flops_fit.training.device import setup_device
from training_support import Regression, Stream, eval_batches, loss_fn, mlp, run_row, settings


def _train(tmp_path, row, data, model=None, name="run", **setting_overrides):
    model = model or mlp()
    metrics = run_training(
        row, model=model, train_data=data, eval_data=eval_batches(), loss_fn=loss_fn,
        settings=settings(**setting_overrides), out_dir=tmp_path / name, checkpoint_dir=tmp_path / f"ckpt_{name}",
    )
    return metrics, model


def _curve(path):
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_trains_exactly_the_planned_tokens_and_flops(tmp_path):
    row = run_row(mlp(), steps=30, batch_size=8)
    metrics, _ = _train(tmp_path, row, Regression())
    assert metrics["status"] == "ok" and metrics["reason"] is None
    assert metrics["steps"] == 30
    assert metrics["tokens"] == 30 * 8 * 8 == row["tokens"]
    assert abs(metrics["flops"] / row["planned_flops"] - 1) < 0.01
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
    curve = _curve(tmp_path / "run" / "curve.tsv")
    assert [int(r["step"]) for r in curve] == list(range(1, 31))
    assert int(curve[-1]["tokens"]) == row["tokens"]
    assert not (tmp_path / "ckpt_run").exists(), "the checkpoint is removed once metrics are written"


def test_schedule_in_the_curve_ends_at_the_final_fraction_on_the_last_step(tmp_path):
    row = run_row(mlp(), steps=25, warmup_steps=5, lr=2e-2)
    _train(tmp_path, row, Regression())
    lrs = [float(r["lr"]) for r in _curve(tmp_path / "run" / "curve.tsv")]
    assert lrs[4] == pytest.approx(2e-2)  # end of warmup: the peak
    assert lrs[-1] == pytest.approx(0.1 * 2e-2)  # final_lr_fraction exactly at the last step
    assert min(lrs[5:]) == lrs[-1]


def test_learns_and_evaluates_at_the_requested_points(tmp_path):
    row = run_row(mlp(), steps=40)
    untrained = evaluate(mlp(), eval_batches(), loss_fn, setup_device("cpu"))
    metrics, model = _train(tmp_path, row, Regression())
    evals = [r for r in _curve(tmp_path / "run" / "curve.tsv") if r["eval_loss"]]
    assert [int(r["step"]) for r in evals] == [10, 20, 30, 40]
    assert float(evals[-1]["eval_loss"]) == pytest.approx(metrics["eval_loss"], rel=1e-5)
    assert metrics["eval_loss"] < 0.7 * untrained
    assert metrics["final_train_loss"] < float(_curve(tmp_path / "run" / "curve.tsv")[0]["train_loss"])


def test_eval_batches_are_the_same_for_every_run(tmp_path):
    """Every run is scored on the same untouched batches, so eval losses are comparable across sizes."""
    batches = eval_batches()
    before = [(x.clone(), y.clone()) for x, y in batches]
    losses = []
    for hidden in (16, 32):
        model = mlp(hidden=hidden)
        row = run_row(model, steps=8, run_id=f"C1e9_hidden{hidden}")
        metrics = run_training(
            row, model=model, train_data=Regression(), eval_data=batches, loss_fn=loss_fn, settings=settings(),
            out_dir=tmp_path / str(hidden), checkpoint_dir=tmp_path / f"c{hidden}",
        )
        # the recorded eval loss is exactly the trained model's loss on those batches
        losses.append((metrics["eval_loss"], evaluate(model, batches, loss_fn, setup_device("cpu"))))
    assert all(torch.equal(x, bx) and torch.equal(y, by) for (x, y), (bx, by) in zip(batches, before))
    for recorded, recomputed in losses:
        assert recorded == pytest.approx(recomputed, rel=1e-6)


def test_huge_learning_rate_diverges_and_is_reported(tmp_path):
    row = run_row(mlp(), steps=200, warmup_steps=0, lr=1e4)
    metrics, _ = _train(tmp_path, row, Regression(), grad_clip=0.0, divergence={"patience_steps": 3})
    assert metrics["status"] == "diverged"
    assert metrics["eval_loss"] is None
    assert "loss" in metrics["reason"] and metrics["steps"] < 200
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "diverged"


def test_iterable_dataset_trains_by_token_count(tmp_path):
    row = run_row(mlp(), steps=12, batch_size=8)
    metrics, _ = _train(tmp_path, row, Stream())
    assert metrics["status"] == "ok" and metrics["tokens"] == row["tokens"]


def test_small_loader_batches_are_accumulated_to_the_planned_batch(tmp_path):
    """A DataLoader of 2-sample batches feeds 8-sample steps: 4 micro-batches per optimizer step."""
    row = run_row(mlp(), steps=10, batch_size=8)
    loader = DataLoader(Stream(), batch_size=2)
    metrics, _ = _train(tmp_path, row, loader)
    assert metrics["tokens"] == row["tokens"] and metrics["steps"] == 10
    tokens = [int(r["tokens"]) for r in _curve(tmp_path / "run" / "curve.tsv")]
    assert tokens == [64 * (i + 1) for i in range(10)]


def test_batches_larger_than_planned_are_refused(tmp_path):
    row = run_row(mlp(), steps=4, batch_size=8)
    with pytest.raises(ValueError, match="tokens per step"):
        _train(tmp_path, row, DataLoader(Regression(), batch_size=16))


def test_wrong_tokens_per_sample_is_refused(tmp_path):
    row = run_row(mlp(), steps=4, tokens_per_sample=4)
    with pytest.raises(ValueError, match="tokens_per_sample"):
        _train(tmp_path, row, Regression())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compile_model", [False, True])
def test_cuda_bf16_run(tmp_path, compile_model):
    row = run_row(mlp(), steps=20)
    metrics, _ = _train(tmp_path, row, Regression(), device="auto", compile=compile_model)
    assert metrics["device"].startswith("cuda") and "bf16" in metrics["device"]
    assert metrics["status"] == "ok" and math.isfinite(metrics["eval_loss"])
    assert (metrics["compile_time_s"] is not None) == compile_model


def test_bf16_autocast_path_runs_on_cpu(tmp_path):
    metrics, _ = _train(tmp_path, run_row(mlp(), steps=6), Regression(), precision="bf16")
    assert metrics["device"] == "cpu (1 threads), bf16" and math.isfinite(metrics["eval_loss"])


@pytest.mark.slow
def test_compiled_model_reports_compile_time_separately(tmp_path):
    metrics, _ = _train(tmp_path, run_row(mlp(), steps=6), Regression(), compile=True)
    assert metrics["status"] == "ok" and metrics["compile_time_s"] > 0
    assert metrics["train_time_s"] < metrics["wall_time_s"] - metrics["compile_time_s"] + 1e-6


def test_kept_checkpoint_resumes_the_same_plan_only(tmp_path):
    row = run_row(mlp(), steps=20)
    keep = {"checkpoint": {"every_steps": 5, "keep": True}}
    first, _ = _train(tmp_path, row, Regression(), **keep)
    assert (tmp_path / "ckpt_run" / "checkpoint.pt").exists()
    again, _ = _train(tmp_path, row, Regression(), **keep)  # picks up at the last checkpoint, step 15
    assert again["resumed_from_step"] == 15
    assert again["eval_loss"] == pytest.approx(first["eval_loss"], abs=1e-6)
    replanned, _ = _train(tmp_path, run_row(mlp(), steps=20, lr=5e-3), Regression(), **keep)
    assert replanned["resumed_from_step"] is None  # a checkpoint of another plan is ignored, not loaded
