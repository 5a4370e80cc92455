"""Speed of ``flops-fit fit`` (1,000 bootstrap resamples) against the classic Approach-3 procedure.

The classic procedure (Hoffmann et al. 2022, Appendix D.2, as replicated by Epoch AI 2024) is written
out here as the reference: L-BFGS-B from every point of the 4,500-start grid
(alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}) on the sum of
Huber(delta = 1e-3) log-residuals in log-sum-exp form, keeping the best. It is given the analytic
gradient (a finite-difference gradient would make it several times slower, and the ratio kinder).

Data: the Epoch AI extraction of Chinchilla Figure 4 (``../shared/notes/data``), 5 highest losses
dropped (240 rows), D = C/(6N), as in Epoch's notebook.

Run:  python bench/fit_speed.py [--bootstrap 1000] [--classic-starts 4500]

Measured 2025-11-25 in one run on the 2 shared CPU cores (load average about 6 from other work):
    classic 4,500 L-BFGS-B starts: 221.7 s, objective 0.0010182740 (alpha .3473, beta .3672, E 1.8172)
    flops-fit fit, point fit + 1,000 resamples, whole command incl. Python start-up: 5.0 s
    ratio 0.023 (goal <= 0.05). On a quiet machine: classic ~41 s, fit_table alone 0.6 s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "notes" / "data"
        / "epoch_chinchilla_svg_extracted_data.csv")
DELTA = 1e-3


def epoch_table() -> pd.DataFrame:
    raw = pd.read_csv(DATA).sort_values("loss").iloc[:-5]
    N, C = raw["Model Size"].to_numpy(), raw["Training FLOP"].to_numpy()
    return pd.DataFrame({"N": N, "D": C / (6 * N), "C": C, "loss": raw["loss"].to_numpy()})


def classic_fit(df: pd.DataFrame, max_starts: int | None = None) -> tuple[np.ndarray, float]:
    """Reference: 4,500 independent L-BFGS-B starts, best objective kept."""
    lnN, lnD, lnL = (np.log(df[c].to_numpy()) for c in ("N", "D", "loss"))

    def fun(p: np.ndarray) -> tuple[float, np.ndarray]:
        e, a, b, al, be = p
        t = np.stack([np.full_like(lnN, e), a - al * lnN, b - be * lnD])
        m = t.max(axis=0)
        ex = np.exp(t - m)
        s = ex.sum(axis=0)
        r = m + np.log(s) - lnL
        q = ex / s
        absr = np.abs(r)
        f = np.where(absr <= DELTA, 0.5 * r * r, DELTA * (absr - 0.5 * DELTA)).sum()
        psi = np.clip(r, -DELTA, DELTA)
        g = np.array([psi @ q[0], psi @ q[1], psi @ q[2], -(psi * q[1]) @ lnN, -(psi * q[2]) @ lnD])
        return float(f), g

    grid = list(itertools.product(np.arange(0, 2.01, 0.5), np.arange(0, 2.01, 0.5),
                                  np.arange(-1, 1.01, 0.5), np.arange(0, 26, 5), np.arange(0, 26, 5)))
    best_x, best_f = None, np.inf
    for al, be, e, a, b in grid[:max_starts]:
        res = minimize(fun, np.array([e, a, b, al, be]), jac=True, method="L-BFGS-B")
        if res.fun < best_f:
            best_x, best_f = res.x, res.fun
    return best_x, best_f


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--classic-starts", type=int, default=None, help="limit the grid (for a quick look)")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"missing {DATA}", file=sys.stderr)
        return 2
    df = epoch_table()
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "epoch.csv"
        df.to_csv(table, index=False)
        cmd = [sys.executable, "-m", "flops_fit.cli", "fit", str(table), "--out", str(Path(tmp) / "fit"),
               "--bootstrap", str(args.bootstrap), "--target-budgets", "1e21", "5.88e23", "1e24"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "MPLBACKEND": "Agg"})
        t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, f = classic_fit(df, args.classic_starts)
    t_classic = time.perf_counter() - t0
    n = 4500 if args.classic_starts is None else min(args.classic_starts, 4500)
    e, a, b, al, be = x
    print(f"classic ({n} L-BFGS-B starts): {t_classic:.1f} s  objective {f:.10f}  "
          f"E={np.exp(e):.4f} A={np.exp(a):.1f} B={np.exp(b):.1f} alpha={al:.4f} beta={be:.4f}")
    print(f"flops-fit fit (point fit + {args.bootstrap} bootstrap resamples, whole command): {t_ours:.2f} s")
    print(f"ratio ours/classic = {t_ours / t_classic:.4f}  (goal <= 0.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
