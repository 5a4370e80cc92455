"""Benchmark: ``sweep.reuse: branches`` against ``none`` on the same sweep, side by side.

Runs one config (default: the shipped ``config/config.yaml``) twice through the real workflow (the
``snakemake`` CLI, 2 cores), once per ``sweep.reuse`` mode, each into its own folder, and prints:
the compute each mode trained (``fit.json`` ``cost``; calibration runs, the same in both, excluded)
and the ratio, the exponent a of N* ∝ C^a with its bootstrap interval, N* per budget and the ratio
branches/none, whether every budget is interior, and both wall times. The done-criteria of issue 11:
trained FLOPs ≤ 0.6×, |Δa| ≤ 0.05, N* within 15 % per budget, every budget interior. Next to the
ratio it prints the floor no branching of the same runs can beat (:func:`cost_floor`: 0.649× on the
default's four budgets); ``--budgets`` replaces the config's budgets, e.g. five over the default's
span: ``--budgets 3e11 5.33e11 9.49e11 1.69e12 3e12`` (floor 0.571×).

    python bench/branches.py --out bench_results/branches [--config config/config.yaml] [--budgets C ...]
                             [--modes none branches]

A mode whose folder already holds a finished ``fit.json`` is not rerun (delete the folder to rerun);
its wall time is then read from ``wall_s.txt``.

Measured 2026-12-01 on the default config, 2 shared CPU cores (docs/architecture.md, "Branches"):
    trained FLOPs branches/none 0.672; a none 0.534 [0.412, 0.717], branches 0.483 [0.336, 0.735];
    N* ratios per budget 1.058, 0.817, 0.803, 0.943; every budget interior in both;
    wall none 13.6 min, branches 11.6 min (rerun alone; 31.8 min while other test runs shared the cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_mode(config: Path, mode: str, out: Path, budgets: list[float] | None) -> float:
    """The workflow on ``config`` with ``sweep.reuse: mode`` in ``out``; its wall time in seconds."""
    folder = out / mode
    done = folder / "results" / "fit" / "fit.json"
    if done.exists() and (folder / "wall_s.txt").exists():
        return float((folder / "wall_s.txt").read_text())
    cfg = yaml.safe_load(config.read_text())
    cfg.setdefault("sweep", {})["reuse"] = mode
    if budgets:
        cfg["budgets"] = budgets
    (folder / "config").mkdir(parents=True, exist_ok=True)
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.monotonic()
    with open(folder / "snakemake.log", "w") as log:
        subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
                        "--directory", str(folder), "--cores", "2", "--workflow-profile", "none"],
                       stdout=log, stderr=subprocess.STDOUT, env=env, check=True)
    wall = time.monotonic() - start
    (folder / "wall_s.txt").write_text(f"{wall:.1f}\n")
    return wall


def summary(folder: Path) -> dict:
    fit = json.loads((folder / "results" / "fit" / "fit.json").read_text())
    iso = fit["isoflop"]
    return {
        "a": iso["a"], "a_ci": (iso.get("ci") or {}).get("a"), "cost": fit.get("cost") or {},
        "optima": {round(math.log10(e["C"]), 3): e for e in iso["per_budget"]},
        "runs": fit["n_runs"],
    }


def cost_floor(folder: Path) -> float:
    """The least trained/separate any branching of this sweep's runs can reach: every run at the top
    budget is a whole run (no larger budget shares its stable run), every other run at best a
    cooldown of f of its tokens, so f + (1 - f) * (the top budget's share of the FLOPs)."""
    import pandas as pd

    f = json.loads((folder / "results" / "validated.json").read_text())["config"]["training"]["schedule"]["wsd_decay_fraction"]
    runs = pd.read_csv(folder / "results" / "plan" / "runs.tsv", sep="\t")
    runs = runs[runs["role"].isin(["sweep", "replicate"])]
    top = runs.loc[runs["budget"] == runs["budget"].max(), "achieved_flops"].sum()
    return f + (1 - f) * top / runs["achieved_flops"].sum()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_results" / "branches")
    parser.add_argument("--modes", nargs="+", default=["none", "branches"])
    parser.add_argument("--budgets", nargs="+", type=float, help="replace the config's budgets (FLOPs)")
    args = parser.parse_args()
    walls = {mode: run_mode(args.config.resolve(), mode, args.out.resolve(), args.budgets) for mode in args.modes}
    res = {mode: summary(args.out.resolve() / mode) for mode in args.modes}
    print(f"config: {args.config}" + (f", budgets {args.budgets}" if args.budgets else ""))
    for mode in args.modes:
        r, c = res[mode], res[mode]["cost"]
        ci = r["a_ci"]
        print(f"{mode:>9}: wall {walls[mode] / 60:.1f} min, {r['runs']} fitted runs, trained {c.get('trained_flops', float('nan')):.4g} "
              f"FLOPs (separate runs {c.get('separate_runs_flops', float('nan')):.4g}; {c.get('branched_runs', 0)} branched "
              f"runs on {c.get('stable_runs', 0)} stable runs), a = {r['a']:.3f}"
              + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    if set(args.modes) >= {"none", "branches"}:
        none, br = res["none"], res["branches"]
        ratio = br["cost"]["trained_flops"] / none["cost"]["trained_flops"]
        print(f"trained FLOPs branches/none: {ratio:.3f} (goal <= 0.6; no branching of the none sweep's runs "
              f"trains less than {cost_floor(args.out.resolve() / 'none'):.3f})")
        print(f"a: none {none['a']:.3f}, branches {br['a']:.3f}, |diff| {abs(none['a'] - br['a']):.3f} (goal <= 0.05)")
        print(f"wall: none {walls['none'] / 60:.1f} min, branches {walls['branches'] / 60:.1f} min "
              f"(ratio {walls['branches'] / walls['none']:.2f})")
        print("budget      N* none    N* branches  ratio  interior none/branches")
        for key in sorted(set(none["optima"]) | set(br["optima"])):
            a, b = none["optima"].get(key), br["optima"].get(key)
            na, nb = (a or {}).get("N_opt"), (b or {}).get("N_opt")
            r = f"{nb / na:.3f}" if na and nb else "  -  "
            print(f"1e{key:<8} {na or float('nan'):10.4g} {nb or float('nan'):12.4g}  {r}  "
                  f"{(a or {}).get('interior')}/{(b or {}).get('interior')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
