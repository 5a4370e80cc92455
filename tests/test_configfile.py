"""Config files through the real `snakemake` CLI: `--configfile my.yaml` is a complete config of its own.

Snakemake merges a `--configfile` into the Snakefile's `configfile:`; the shipped example's model and
dataset kwargs and sweep windows leaked into users' configs that way. Each test sets up a folder like
a clone of the repository (the example at `config/config.yaml`) and stops after `validate`, whose
`results/validated.json` holds the config the workflow actually uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from flops_fit.config import load_config
from flops_fit.config import sweep_config as config_of_sweep
from workflow_support import ROOT
from workflow_support import snakemake as run_snakemake


#: a recurrent model whose constructor accepts none of the example GPT's kwargs
GRU_CODE = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset


    class GRULM(nn.Module):
        def __init__(self, hidden, vocab=16):
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.gru = nn.GRU(hidden, hidden, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, x):
            return self.head(self.gru(self.embed(x))[0])


    def shifted_tokens(n=256, seq=8, vocab=16):
        x = torch.randint(0, vocab, (n, seq), generator=torch.Generator().manual_seed(0))
        return TensorDataset(x, x.roll(1, dims=1))


    def loss(predictions, targets):
        return nn.functional.cross_entropy(predictions.flatten(0, 1), targets.flatten())
''')
GRU_CONFIG = {
    "model": {"class": "gru.py:GRULM", "size_param": "hidden", "sizes": [4, 8, 16, 32]},
    "dataset": {"target": "gru.py:shifted_tokens"},
    "loss": {"target": "gru.py:loss"},
    "budgets": [1.0e6, 3.0e6],
}


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`snakemake` run the way a user runs it: from ``cwd``, with relative paths."""
    return run_snakemake(cwd, *args, cores=1, timeout=300, as_user=True)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A folder laid out like the repository: the workflow, the example config, the .test config."""
    (tmp_path / "workflow").symlink_to(ROOT / "workflow")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / ".test" / "config", tmp_path / ".test" / "config")
    return tmp_path


def used_config(workdir: Path) -> dict:
    return json.loads((workdir / "results" / "validated.json").read_text())["config"]


def sweep_config(path: Path) -> dict:
    """A config file as the sweep uses it: defaults filled, without ``verify`` and ``worker`` (the
    validate rule leaves them out so that choosing what to verify or how jobs start never re-plans)."""
    return config_of_sweep(load_config(path))


def test_a_users_configfile_is_used_alone(clone):
    (clone / "gru.py").write_text(GRU_CODE)
    (clone / "my.yaml").write_text(yaml.safe_dump(GRU_CONFIG))
    result = snakemake(clone, "--configfile", "my.yaml", "--until", "validate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = used_config(clone)
    assert config == sweep_config(clone / "my.yaml")  # the user's file alone, defaults filled
    assert config["model"]["kwargs"] == {} and config["dataset"]["kwargs"] == {}
    assert config["eval_dataset"]["target"] is None and config["sweep"]["budget_sizes"] == []


def test_the_test_config_is_used_alone(clone):
    """`.test`'s GPT reads 32 tokens; the example's 64-token eval set must not leak into it."""
    result = snakemake(clone, "--configfile", ".test/config/config.yaml", "--until", "validate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert used_config(clone) == sweep_config(clone / ".test/config/config.yaml")


@pytest.mark.parametrize(
    "args",
    [
        ("--config", "budgets=[1.0e+11]", "fit={'degree': 3}"),
        ("--configfile", "config/config.yaml", "overlay.yaml"),
    ],
)
def test_overlays_change_only_their_keys(clone, args):
    (clone / "overlay.yaml").write_text(yaml.safe_dump({"budgets": [1.0e11], "fit": {"degree": 3}}))
    result = snakemake(clone, *args, "--until", "validate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = sweep_config(clone / "config/config.yaml")
    expected["budgets"], expected["fit"]["degree"] = [1.0e11], 3
    assert used_config(clone) == expected


def test_an_overlay_alone_says_how_to_layer_it(clone):
    (clone / "overlay.yaml").write_text(yaml.safe_dump({"budgets": [1.0e11]}))
    result = snakemake(clone, "--configfile", "overlay.yaml", "--dry-run")
    assert result.returncode != 0
    assert "'model' is a required property" in result.stderr
    assert "--configfile config/config.yaml my_overlay.yaml" in result.stderr


def test_directory_dot_test_uses_its_own_config_and_results(clone):
    """The catalog's `snakemake --directory .test`: .test/config/config.yaml in, .test/results out."""
    result = snakemake(clone, "--directory", ".test", "--until", "validate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert used_config(clone / ".test") == sweep_config(clone / ".test/config/config.yaml")
    assert not (clone / "results").exists()


def test_dot_test_outputs_are_git_ignored():
    paths = [".test/results/validated.json", ".test/logs/validate.log", ".test/.snakemake/log/x.log"]
    result = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == paths
