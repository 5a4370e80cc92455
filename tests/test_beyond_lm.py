"""Issue 25's acceptance cases, end to end through ``find_optimal`` and ``snakemake --configfile``.

Two users flops-fit was not built around, each with code in a file next to their config:

* a **ViT on 8×8 digit images** (size knob ``embed_dim``; one image is one "token"), a finite set of
  1,285 images (so the sweep repeats data), and ``torch.nn:CrossEntropyLoss``. Its real training cost
  is 7-18× 6N (attention over 17 patches); its smallest models sit at chance level (ln 10) from an
  initial loss above it.
* a **byte-level LM on a streamed source**: an endless ``IterableDataset`` of bytes (random numbers
  spelled out in English), wrapped in a user ``DataLoader`` with ``batch_size=7``; the shipped GPT at
  vocab 256. (Source code as bytes learns too slowly for a test's budgets: its runs stay near the
  unigram level, which the chance check rightly calls no learning.)

What must hold in both: budgets in measured FLOPs (the runs table's ``flops_per_token`` is the counter's,
``flops_per_token_6n`` beside it, the plan's warning when 6N is off), no run that did not learn in the
fit, epochs per run and per recommendation on the summary page (finite data) and no run called
diverged by batch-7 noise. Slow (a few minutes of real training): run with ``-m slow``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from flops_fit import find_optimal
from flops_fit.examples.gpt import GPT
from workflow_support import snakemake

pytestmark = pytest.mark.slow

VIT_CODE = textwrap.dedent('''
    """A tiny ViT (size knob embed_dim) on noisy, shifted 8x8 digit glyphs."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    GLYPHS = [
        "..####..|.#....#.|.#....#.|.#....#.|.#....#.|.#....#.|.#....#.|..####..",
        "...##...|..###...|...##...|...##...|...##...|...##...|...##...|..####..",
        "..####..|.#....#.|......#.|.....#..|....#...|...#....|..#.....|.######.",
        "..####..|.#....#.|......#.|...###..|......#.|......#.|.#....#.|..####..",
        ".....#..|....##..|...#.#..|..#..#..|.######.|.....#..|.....#..|.....#..",
        ".######.|.#......|.#......|.#####..|......#.|......#.|.#....#.|..####..",
        "..####..|.#......|.#......|.#####..|.#....#.|.#....#.|.#....#.|..####..",
        ".######.|......#.|.....#..|....#...|...#....|...#....|...#....|...#....",
        "..####..|.#....#.|.#....#.|..####..|.#....#.|.#....#.|.#....#.|..####..",
        "..####..|.#....#.|.#....#.|..#####.|......#.|......#.|.....#..|..###...",
    ]


    def digits(n=1285, noise=0.35, seed=0):
        g = torch.Generator().manual_seed(seed)
        base = torch.tensor([[[1.0 if c == "#" else 0.0 for c in row] for row in glyph.split("|")]
                             for glyph in GLYPHS])
        labels = torch.randint(0, 10, (n,), generator=g)
        shifts = torch.randint(-1, 2, (n, 2), generator=g)
        images = torch.stack([torch.roll(base[k], (int(s[0]), int(s[1])), dims=(0, 1))
                              for k, s in zip(labels, shifts)])
        flips = torch.rand(images.shape, generator=g) < 0.08
        images = torch.where(flips, 1 - images, images) + noise * torch.randn(images.shape, generator=g)
        return TensorDataset(images.unsqueeze(1), labels)


    class ViT(nn.Module):
        def __init__(self, embed_dim, depth=2, patch=2, image=8, classes=10):
            super().__init__()
            self.patches = nn.Conv2d(1, embed_dim, patch, stride=patch)
            n = (image // patch) ** 2
            self.cls = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.pos = nn.Parameter(0.02 * torch.randn(1, n + 1, embed_dim))
            layer = nn.TransformerEncoderLayer(embed_dim, max(1, embed_dim // 16), 4 * embed_dim, dropout=0.0,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(embed_dim)
            self.head = nn.Linear(embed_dim, classes)

        def forward(self, x):
            x = self.patches(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos
            return self.head(self.norm(self.blocks(x))[:, 0])
''')

BYTES_CODE = textwrap.dedent('''
    """Random numbers spelled out in English, streamed as bytes: windows of seq_len bytes, never all in memory."""
    import random

    import torch
    from torch.utils.data import DataLoader, IterableDataset

    ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \\
           "sixteen seventeen eighteen nineteen".split()
    TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


    def spell(n):
        if n < 20:
            return ONES[n]
        if n < 100:
            return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
        if n < 1000:
            return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " and " + spell(n % 100))
        return spell(n // 1000) + " thousand" + ("" if n % 1000 == 0 else ", " + spell(n % 1000))


    class SpelledNumbers(IterableDataset):
        def __init__(self, seq_len=32, seed=0, windows=None):
            self.seq_len, self.seed, self.windows = seq_len, seed, windows

        def __iter__(self):
            rng, buffer, made = random.Random(self.seed), b"", 0
            while self.windows is None or made < self.windows:
                while len(buffer) <= self.seq_len:
                    buffer += (spell(rng.randrange(1_000_000)) + ". ").encode()
                chunk = torch.tensor(list(buffer[: self.seq_len + 1]))
                buffer, made = buffer[self.seq_len:], made + 1
                yield chunk[:-1], chunk[1:]


    def train_loader(seq_len=32, batch_size=7):
        return DataLoader(SpelledNumbers(seq_len, seed=0), batch_size=batch_size)


    def eval_stream(seq_len=32):
        return SpelledNumbers(seq_len, seed=1, windows=256)
''')

#: sweep settings of both cases: a fixed lr law (no calibration) and 4 sizes keep them to minutes
QUICK = {"sizes_per_budget": 4, "lr_calibration": {"enabled": False}, "seed_replicates": 0, "max_extensions": 1}

VIT = {
    "model": {"class": "vit.py:ViT", "size_param": "embed_dim", "kwargs": {"depth": 2, "patch": 2}},
    "dataset": {"target": "vit.py:digits", "kwargs": {"n": 1285, "seed": 0}},
    "eval_dataset": {"target": "vit.py:digits", "kwargs": {"n": 400, "seed": 1}, "samples": 400},
    "loss": {"target": "torch.nn:CrossEntropyLoss"},
    "budgets": [5e9, 1.5e10],
    "target_budgets": [1e11],
    "sweep": {**QUICK, "lr": 0.03, "lr_exponent": 0, "lr_reference_params": 1000},
    "training": {"threads": 1},
    "fit": {"bootstrap": 50},
}

BYTES = {
    "model": {"class": "flops_fit.examples.gpt:GPT", "size_param": "d_model",
              "kwargs": {"n_layer": 1, "vocab_size": 256, "block_size": 32, "head_dim": 16}},
    "dataset": {"target": "bytestream.py:train_loader", "kwargs": {"seq_len": 32, "batch_size": 7}},
    "eval_dataset": {"target": "bytestream.py:eval_stream", "kwargs": {"seq_len": 32}, "samples": 128},
    "loss": {"target": "torch.nn:CrossEntropyLoss"},
    "budgets": [1e10, 3e10],
    "target_budgets": [1e11],
    "sweep": {**QUICK, "lr": 0.03, "lr_exponent": -0.5, "lr_reference_params": 10000},
    "training": {"threads": 1},
    "fit": {"bootstrap": 50},
}


#: case → (the user's code, their config)
CASES = {"vit": (VIT_CODE, VIT), "bytestream": (BYTES_CODE, BYTES)}


def _user_folder(tmp_path: Path, name: str) -> Path:
    code, config = CASES[name]
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.py").write_text(code)
    (folder / "my.yaml").write_text(yaml.safe_dump(config))
    return folder


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _metrics(results: Path, run_id: str) -> dict:
    return json.loads((results / "runs" / run_id / "metrics.json").read_text())


def _check_sweep(results: Path, finite_data: bool) -> set[str]:
    """What both entry points must show: measured FLOPs, no dead run fitted, epochs on the page."""
    runs = pd.read_csv(results / "plan" / "runs.tsv", sep="\t")
    assert (runs["flops_convention"] == "measured").all()
    ratio = runs["flops_per_token"] / runs["flops_per_token_6n"]
    assert (ratio > 1).all()  # attention, norms, the patch convolution: more than 6N at every size
    fit = json.loads((results / "fit" / "fit.json").read_text())
    outcome = pd.read_csv(results / "report" / "runs.tsv", sep="\t").set_index("run_id")["status"]
    statuses = {run_id: _metrics(results, run_id) for run_id in runs["run_id"]}
    # batch noise is not divergence: no run diverged, none was even retried
    assert all(m["status"] != "diverged" and len(m["attempts"]) == 1 for m in statuses.values())
    for run_id, metrics in statuses.items():
        assert metrics["chance_eval_loss"] is not None and metrics["chance_eval_loss"] > 0
    dead = {r for r, m in statuses.items() if m["eval_loss"] > 0.98 * min(m["initial_eval_loss"], m["chance_eval_loss"])}
    warnings = " ".join(fit["warnings"])
    for run_id in dead:  # every run that stayed at its start or at chance is named and left out
        assert f"{run_id} excluded from the fit: status 'no_learning'" in warnings
        assert outcome[run_id] == "no_learning"
    page = (results / "report" / "summary.html").read_text()
    if (ratio > 1.1).any():  # the plan's warning reaches the page
        assert "FLOPs per token (measured) are" in page and "x 6N" in page
    if finite_data:
        assert (runs["epochs"] > 0).all()
        assert "epochs" in page and "repeat" in page
        recommendations = pd.read_csv(results / "fit" / "recommendations.tsv", sep="\t")
        assert (recommendations["epochs"] > 0).all()
    return dead


@pytest.mark.parametrize("case", list(CASES))
def test_a_new_kind_of_model_runs_by_config(tmp_path, case):
    folder = _user_folder(tmp_path, case)
    result = snakemake(folder, "--configfile", str(folder / "my.yaml"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    dead = _check_sweep(folder / "results", finite_data=case == "vit")
    runs = pd.read_csv(folder / "results" / "plan" / "runs.tsv", sep="\t")
    if case == "vit":
        assert dead  # its smallest (or largest) sizes stay at chance at these budgets
        assert (runs["flops_per_token"] > 5 * runs["flops_per_token_6n"]).all()  # 17 tokens of attention
    else:
        assert (runs["batch_size"] == 7).all()  # the loader's batch, planned from
        assert (result.stdout + result.stderr).count("DataLoader's batch_size=7 replaces") == 1


@pytest.mark.parametrize("case", list(CASES))
def test_a_new_kind_of_model_runs_through_find_optimal(tmp_path, case):
    config = CASES[case][1]
    folder = _user_folder(tmp_path, case)
    user = _import(folder / f"{case}.py")
    if case == "vit":
        model_cls, size_param, kwargs = user.ViT, "embed_dim", config["model"]["kwargs"]
        data, held_out = user.digits(1285, seed=0), user.digits(400, seed=1)
    else:
        model_cls, size_param, kwargs = GPT, "d_model", config["model"]["kwargs"]
        data, held_out = user.train_loader(32, 7), user.eval_stream(32)
    result = find_optimal(model_cls, size_param, kwargs, data, torch.nn.CrossEntropyLoss(), config["budgets"],
                          eval_dataset=held_out, eval_samples=config["eval_dataset"]["samples"],
                          target_budgets=config["target_budgets"], output_dir=folder / "results",
                          sweep=config["sweep"], fit=config["fit"], threads=1, progress=False)
    _check_sweep(folder / "results", finite_data=case == "vit")
    assert len(result.runs) >= 8
    assert all(math.isfinite(x) for x in result.runs["flops_per_token"])
