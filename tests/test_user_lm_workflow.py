"""A Hugging Face-style user through the real ``snakemake`` CLI: dict rows, ModelOutput, torch.nn:CrossEntropyLoss.

The dataset mimics ``datasets.Dataset.with_format("torch")`` (not a torch ``Dataset``; rows are
``{"input_ids", "attention_mask", "labels"}``), the model returns a ``ModelOutput``-like dict with
``logits`` (B, T, V), and the loss is PyTorch's own cross-entropy, named by config alone.
"""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import yaml

from workflow_support import snakemake

USER_CODE = textwrap.dedent('''
    from collections import OrderedDict

    import torch

    from flops_fit.examples.gpt import GPT
    from flops_fit.examples.markov import MarkovTokens


    class Output(OrderedDict):
        """transformers' ModelOutput in miniature."""

        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None


    class TinyLM(GPT):
        def forward(self, input_ids):
            return Output(logits=super().forward(input_ids))


    class TokenizedRows:
        """Like datasets.Dataset after .with_format("torch"): indexable, sized, dict rows."""

        column_names = ["input_ids", "attention_mask", "labels"]

        def __init__(self, **kwargs):
            self.source = MarkovTokens(**kwargs)

        @property
        def format(self):
            return {"type": "torch", "columns": self.column_names}

        def with_format(self, type):
            return self

        def __len__(self):
            return len(self.source)

        def __getitem__(self, i):
            x, y = self.source[i]
            return {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": y}
''')


def test_hf_style_rows_model_output_and_cross_entropy_by_config(tmp_path):
    (tmp_path / "mylm.py").write_text(USER_CODE)
    config = {
        "model": {"class": "mylm.py:TinyLM", "size_param": "d_model", "sizes": [8, 16, 24, 32],
                  "kwargs": {"n_layer": 1, "vocab_size": 64, "block_size": 32, "head_dim": 8}},
        "dataset": {"target": "mylm.py:TokenizedRows",
                    "kwargs": {"vocab_size": 64, "seq_len": 32, "num_samples": 8192, "gamma": 0.7}},
        "eval_dataset": {"samples": 128},
        "loss": {"target": "torch.nn:CrossEntropyLoss"},
        "budgets": ["1e10", "3e10"],
        "sweep": {"sizes_per_budget": 4, "steps": 20, "lr": 0.02, "lr_exponent": -0.5, "lr_reference_size": 8,
                  "placement": "fixed", "lr_calibration": {"enabled": False}, "seed_replicates": 0},  # rows under test
        "fit": {"bootstrap": 10},
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    runs = pd.read_csv(tmp_path / "results/plan/runs.tsv", sep="\t")
    assert len(runs) == 8 and (runs.tokens_per_sample == 32).all()
    for run_id in runs.run_id:
        metrics = json.loads((tmp_path / "results/runs" / run_id / "metrics.json").read_text())
        assert metrics["status"] == "ok" and 1 < metrics["eval_loss"] < 4.2  # below ln 64: it learned
    log = (tmp_path / "logs/train" / f"{runs.run_id[0]}.log").read_text()
    assert log.count("are passed to CrossEntropyLoss as") == 1  # said once, not every step
    assert json.loads((tmp_path / "results/fit/fit.json").read_text())["isoflop"]["per_budget"]
