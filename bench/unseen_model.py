"""A model flops-fit has never seen, configured as a new user would: no sizes, a poor tokens_per_param.

A causal convolutional language model (not the shipped GPT: no attention, a ``width`` knob) on the
synthetic Markov source, with ``torch.nn.CrossEntropyLoss()`` on its (B, T, V) logits and every
sweep default (batch law, lr calibration, adaptive placement) except ``sweep.tokens_per_param: 2``,
which centres the first window about 3x too large in N. The check of issue "Answers users can trust":
every budget ends with an interior minimum, the fit has a backtest, and recommendations.tsv carries
both approaches' N*.

    python bench/unseen_model.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import flops_fit
from flops_fit.examples.markov import MarkovTokens


class ConvLM(nn.Module):
    """Token embedding, two causal convolutions (kernel 4) with GELU, a linear head; size knob ``width``."""

    def __init__(self, width: int, vocab_size: int = 64, kernel: int = 4):
        super().__init__()
        self.kernel = kernel
        self.embed = nn.Embedding(vocab_size, width)
        self.conv1 = nn.Conv1d(width, 2 * width, kernel)
        self.conv2 = nn.Conv1d(2 * width, width, kernel)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx).transpose(1, 2)  # (B, width, T)
        x = nn.functional.gelu(self.conv1(nn.functional.pad(x, (self.kernel - 1, 0))))
        x = nn.functional.gelu(self.conv2(nn.functional.pad(x, (self.kernel - 1, 0))))
        return self.head(x.transpose(1, 2))  # (B, T, V)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results_unseen"))
    parser.add_argument("--tokens-per-param", type=float, default=2.0,
                        help="the (poor) guess that centres the first window (the optimum here is about 15-20)")
    args = parser.parse_args()
    start = time.monotonic()
    result = flops_fit.find_optimal(
        ConvLM, "width", {"vocab_size": 64},
        dataset=MarkovTokens(vocab_size=64, seq_len=32, num_samples=65536),
        loss_fn=torch.nn.CrossEntropyLoss(),
        compute_budgets=[1e10, 3e10, 1e11],
        target_budgets=[1e12],
        output_dir=args.out,
        sweep={"tokens_per_param": args.tokens_per_param},
        fit={"bootstrap": 200},
    )
    wall = time.monotonic() - start
    print(result)
    runs = result.runs
    print(runs.groupby("budget").agg(runs=("run_id", "size"), waves=("wave", "nunique"), first_wave=("wave", "min"),
                                     N_min=("params", "min"), N_max=("params", "max")))
    print(result.optima.to_string(index=False))
    fit = json.loads((args.out / "fit" / "fit.json").read_text())
    print("backtest:", json.dumps(fit.get("backtest")))
    rec = pd.read_csv(args.out / "fit" / "recommendations.tsv", sep="\t")
    print(rec[[c for c in ("C", "size", "method", "N_star_isoflop", "N_star_parametric", "tokens_per_param")
               if c in rec.columns]].to_string(index=False))
    interior = bool(result.optima["interior"].all())
    print(f"every budget interior: {interior}; wall {wall:.0f} s; "
          f"{len(runs)} sweep runs + {len(pd.read_csv(args.out / 'plan' / 'lr_calibration.tsv', sep=chr(9)))} calibration runs")


if __name__ == "__main__":
    main()
