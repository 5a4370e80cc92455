"""A user's own model, data and loss, in a .py file next to the config, through the real workflow.

Not the example GPT: an MLP regressor whose size knob is ``width``, a dataset built by a function,
and a plain-function loss, all named by config alone.
"""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest
import yaml

from workflow_support import snakemake

USER_CODE = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset


    class MLP(nn.Module):
        def __init__(self, width, depth=2, n_in=8):
            super().__init__()
            layers, d = [], n_in
            for _ in range(depth):
                layers += [nn.Linear(d, width), nn.GELU()]
                d = width
            self.net = nn.Sequential(*layers, nn.Linear(d, 1))

        def forward(self, x):
            return self.net(x).squeeze(-1)


    def make_dataset(n, n_in=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, n_in, generator=g)
        y = torch.sin(x @ torch.randn(n_in, generator=g)) + 0.1 * torch.randn(n, generator=g)
        return TensorDataset(x, y)


    def mse(predictions, targets):
        return ((predictions - targets) ** 2).mean()
''')


def test_own_model_runs_by_config_alone_without_sizes(tmp_path):
    """No model.sizes: the planner searches the width knob; the lr is calibrated; budgets come in waves."""
    (tmp_path / "mymodel.py").write_text(USER_CODE)
    config = {
        "model": {"class": "mymodel.py:MLP", "size_param": "width", "kwargs": {"depth": 2}},
        "dataset": {"target": "mymodel.py:make_dataset", "kwargs": {"n": 20000}},
        "eval_dataset": {"samples": 500},
        "loss": {"target": "mymodel.py:mse"},
        "budgets": ["2e7", "6e7"],
        "target_budgets": ["1e9"],
        "sweep": {"sizes_per_budget": 4, "steps": 30, "lr": 0.05, "lr_reference_params": 1000,
                  "tokens_per_param": 2, "max_extensions": 1, "lr_calibration": {"factors": [0.5, 1, 2]}, "seed_replicates": 0,
                  # 6N: this 30-step design sits at the edge of learning at its largest calibration size;
                  # measured FLOPs (0.8-0.95x 6N) move it from width 75 to 77, which then stays flat
                  "flops_per_token": "6N"},
        "fit": {"bootstrap": 20},
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    runs = pd.read_csv(tmp_path / "results/plan/runs.tsv", sep="\t")
    assert set(runs.size_param) == {"width"} and set(runs.role) == {"sweep"}
    assert (runs.groupby("budget")["size"].nunique() >= 4).all()
    assert (runs["size"] % 1 == 0).all()  # knob values the search found (integers)
    assert runs.groupby("budget")["wave"].min().is_monotonic_increasing  # budgets placed in ascending order
    assert (runs.tokens_per_sample == 1).all()  # one regression target per sample
    calibration = json.loads((tmp_path / "results/plan/lr_calibration.json").read_text())
    assert calibration["enabled"] and len(calibration["per_size"]) == 3
    expected = [calibration["coefficient"] * n ** calibration["exponent"] for n in runs.params]
    assert runs.lr.tolist() == pytest.approx(expected, rel=1e-6)
    for run_id in runs.run_id:
        metrics = json.loads((tmp_path / "results/runs" / run_id / "metrics.json").read_text())
        assert metrics["status"] == "ok" and 0 < metrics["eval_loss"] < 5
    fit = json.loads((tmp_path / "results/fit/fit.json").read_text())
    assert len(fit["isoflop"]["per_budget"]) == 2 and "backtest" in fit
    recommendations = pd.read_csv(tmp_path / "results/fit/recommendations.tsv", sep="	")
    assert {"N_star_isoflop", "N_star_parametric", "method"} <= set(recommendations.columns)
