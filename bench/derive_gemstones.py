"""Derive ``gemstones_isoflop_interpolated.csv`` (read by ``bench/public_sweeps.py``) from Gemstones' logs.

Gemstones (McLeish et al. 2025, github.com/mcleish7/gemstone-scaling-laws, MIT) logs each run's
validation loss every 477 steps (2.0e9 tokens), not at isoFLOP budgets. This script reads each run's
curve at C = 1e18 * 2^k: D = C / (6N), the loss linearly interpolated in ln(tokens) between the two
neighbouring logged points, only where D lies inside the logged range (no extrapolation). The file
is written to the public data folder, never into this repository.

    python bench/derive_gemstones.py --source /work/.mirror/mcleish7+gemstone-scaling-laws/repo

``--source`` is either a git directory (a ``fetch`` snapshot, read at ``--commit``) or a checkout.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from public_sweeps import GEMSTONES, default_data_dir  # noqa: E402

COMMIT = "5f420478f6057b0cbb4d13405fb10ca64675bccb"
#: curve name (the column ``curve`` in the CSV) -> the log file it is read from
CURVES = {
    "hot_100b+_477": "wandb_dfs/wandb_df_for_fitting_hot_100b+_477.jsonl",
    "lr_ablation_hot_477": "wandb_dfs/wandb_df_for_fitting_lr_ablation_hot_477.jsonl",
}
BUDGETS = 1e18 * 2.0 ** np.arange(0, 13)


def read_log(source: Path, path: str, commit: str) -> pd.DataFrame:
    """One jsonl log, from a checkout or (when ``source`` has no work tree) from the git objects."""
    if (source / path).is_file():
        return pd.read_json(source / path, lines=True)
    text = subprocess.run(["git", "--git-dir", str(source), "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout
    return pd.read_json(io.StringIO(text), lines=True)


def isoflop_points(log: pd.DataFrame, curve: str) -> pd.DataFrame:
    """Every run's loss at every budget its logged token range covers."""
    rows = []
    for run, t in log.groupby("run_name"):
        t = t.sort_values("tokens")
        N = float(t["params_active_precise"].iloc[0])
        ln_tokens = np.log(t["tokens"].to_numpy(float))
        for C in BUDGETS:
            D = C / (6 * N)
            if not ln_tokens[0] <= np.log(D) <= ln_tokens[-1]:
                continue
            loss = float(np.interp(np.log(D), ln_tokens, t["final_loss"].to_numpy(float)))
            rows.append({"curve": curve, "run_name": run, "N": N, "D": D, "C": C, "loss": loss})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="gemstone-scaling-laws git dir or checkout")
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--data", type=Path, default=None, help="output folder (default: the public data folder)")
    args = parser.parse_args(argv)
    out = (args.data or default_data_dir()) / GEMSTONES
    table = pd.concat([isoflop_points(read_log(args.source, path, args.commit), curve)
                       for curve, path in CURVES.items()], ignore_index=True)
    tmp = out.with_suffix(".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    print(f"{out}: {len(table)} points, {table['run_name'].nunique()} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
