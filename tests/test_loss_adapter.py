"""``nn.CrossEntropyLoss()`` on a language model's logits, and models returning ``ModelOutput``, train as written."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from flops_fit.examples.gpt import GPT
from flops_fit.loss import AdaptedLoss
from flops_fit.training import run_training
from flops_fit.training.device import setup_device
from flops_fit.training.evaluation import evaluate
from lm_support import GPT_KWARGS, SEQ, VOCAB, DictTokens, HFStyleLM, ModelOutput, TextDataset, token_rows
from training_support import settings


def test_lm_logits_are_flattened_for_cross_entropy_and_said_once(caplog):
    logits, targets = torch.randn(2, SEQ, VOCAB), torch.randint(0, VOCAB, (2, SEQ))
    loss = AdaptedLoss(torch.nn.CrossEntropyLoss())
    with caplog.at_level(logging.INFO, logger="flops_fit"):
        values = [loss(logits, targets) for _ in range(3)]
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
    assert all(torch.allclose(v, expected) for v in values)
    said = [r.getMessage() for r in caplog.records if "flattened" in r.getMessage() or "passed to" in r.getMessage()]
    assert said == [f"loss: predictions (2, {SEQ}, {VOCAB}) with integer targets (2, {SEQ}) are passed to "
                    f"CrossEntropyLoss as ({2 * SEQ}, {VOCAB}) and ({2 * SEQ},) (one row per target; "
                    "see docs/architecture.md)"]


def test_model_output_stands_for_its_logits_and_other_shapes_pass_unchanged():
    logits, targets = torch.randn(2, SEQ, VOCAB), torch.randint(0, VOCAB, (2, SEQ))
    loss = AdaptedLoss(torch.nn.CrossEntropyLoss())
    assert torch.allclose(loss(ModelOutput(logits=logits), targets), loss(logits, targets))
    seen = []
    AdaptedLoss(lambda p, t: seen.append((p.shape, t.shape)))(torch.randn(4, 3), torch.randn(4, 3))  # regression
    AdaptedLoss(lambda p, t: seen.append((p.shape, t.shape)))(torch.randn(4, 5), torch.tensor([0, 1, 2, 3]))
    assert seen == [((4, 3), (4, 3)), ((4, 5), (4,))]


def run(tmp_path, model, data, eval_data):
    row = {
        "run_id": "C1e8_d_model16", "budget": 1e8, "size_param": "d_model", "size": 16, "params": 1,
        "params_total": 1, "flops_per_token": 1.0, "flops_convention": "6N", "tokens_per_sample": SEQ,
        "batch_size": 8, "steps": 20, "lr": 1e-2, "warmup_steps": 2, "seed": 0, "tokens": 20 * 8 * SEQ,
        "planned_flops": 1.0, "achieved_flops": 1.0,
    }
    return run_training(row, model=model, train_data=data, eval_data=eval_data, loss_fn=torch.nn.CrossEntropyLoss(),
                        settings=settings(), out_dir=tmp_path / "run", checkpoint_dir=tmp_path / "ckpt")


def test_origin_example_1_trains_with_cross_entropy(tmp_path):
    """The interface document's Example 1 (docs/interfaces.md): TextDataset (x, y) windows and ``torch.nn.CrossEntropyLoss()``."""
    tokens = token_rows(400).reshape(-1)[:-1]  # not a multiple of seq_len, or Example 1's last y is short
    data = TextDataset(tokens, seq_len=SEQ)
    eval_data = [tuple(torch.stack(z) for z in zip(*(data[i] for i in range(16))))]
    torch.manual_seed(0)
    model = GPT(d_model=16, **GPT_KWARGS)  # logits tensor (B, T, V)
    untrained = evaluate(model, eval_data, AdaptedLoss(torch.nn.CrossEntropyLoss()), setup_device("cpu"))
    metrics = run(tmp_path, model, data, eval_data)
    assert metrics["status"] == "ok" and metrics["eval_loss"] < untrained


def test_model_output_lm_on_dict_samples_trains(tmp_path):
    torch.manual_seed(0)
    model = HFStyleLM(d_model=16, **GPT_KWARGS)
    eval_data = [(torch.stack([s["input_ids"] for s in b]), torch.stack([s["labels"] for s in b]))
                 for b in [[DictTokens(16, seed=5)[i] for i in range(16)]]]
    metrics = run(tmp_path, model, DictTokens(256), eval_data)
    assert metrics["status"] == "ok" and metrics["eval_loss"] < 3.0 < torch.log(torch.tensor(VOCAB)).item()
