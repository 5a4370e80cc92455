"""One-off study: does the calibrated recipe give the exponent a brute-force lr search gives?

On the default synthetic source (config/config.yaml), three recipes side by side in one run:

* ``v1``: version 1's hand-tuned recipe (400 fixed steps so batch ∝ D, lr = 0.03·(N/N(d=32))^-1/2,
  warmup 20 tokens per parameter capped at 5 %, hand-placed windows);
* ``calibrated``: today's defaults (DeepSeek batch law, lr*(N) from the calibration, adaptive
  placement), read from a finished default sweep (``--default-results``, e.g. ``results`` after
  ``make run``);
* ``brute``: the calibrated sweep's runs retrained at 0.5x and 2x their lr, keeping each run's best
  of the three learning rates (lr tuned per size and budget by brute force).

Prints a (N* ∝ C^a) with its bootstrap interval and N* per budget for each, and the ratios to the
brute-force values. Minutes to an hour on 2 CPU cores.

    python bench/recipe_study.py --default-results results --out bench_results/recipe_study
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
import yaml

from flops_fit import pipeline, planning
from flops_fit.api import find_optimal
from flops_fit.config import prepare_config
from flops_fit.fitting import ScalingFit, fit_table
from flops_fit.paths import Results
from flops_fit.validation import build_objects

#: version 1's default sweep section (config/config.yaml before adaptive placement)
V1_SWEEP = {
    "steps": 400, "lr": 0.03, "lr_reference_size": 32, "lr_exponent": -0.5, "warmup_tokens_per_param": 20,
    "max_warmup_fraction": 0.05, "placement": "fixed", "lr_calibration": {"enabled": False},
    "budget_sizes": [
        {"budget": 3.0e11, "sizes": [16, 24, 32, 48, 64, 96]},
        {"budget": 6.5e11, "sizes": [24, 32, 48, 64, 96, 128]},
        {"budget": 1.4e12, "sizes": [32, 48, 64, 96, 128, 192]},
        {"budget": 3.0e12, "sizes": [48, 64, 96, 128, 192, 256]},
    ],
}
LR_FACTORS = (0.5, 2.0)


def summary(name: str, fit: ScalingFit) -> dict:
    iso = fit.isoflop
    optima = {round(e.C, -9): e.N_opt for e in iso.per_budget}
    return {"recipe": name, "a": iso.a, "a_ci": iso.ci.get("a"),
            "interior": sum(e.interior for e in iso.per_budget), **{f"N*@{c:.2g}": n for c, n in optima.items()}}


def run_v1(config: dict, out: Path) -> ScalingFit:
    model_cls, dataset, eval_dataset, loss_fn = build_objects(config)
    m = config["model"]
    result = find_optimal(
        model_cls, m["size_param"], m["kwargs"], dataset, loss_fn, config["budgets"],
        sizes=[16, 24, 32, 48, 64, 96, 128, 192, 256], eval_dataset=eval_dataset,
        eval_samples=config["eval_dataset"]["samples"], output_dir=out, sweep=V1_SWEEP,
        fit={"bootstrap": 1000, "degree": 2},
    )
    return result.fit


def train_variant(config: dict, run: dict, out: str) -> float | None:
    """Train one lr variant of a planned run in this process (one thread); its eval loss."""
    results = Results(Path(out))
    if not results.metrics(run["run_id"]).exists():
        pipeline.train_run(config, run, build_objects(config), results.run_dir(run["run_id"]),
                           results.checkpoint_dir(run["run_id"]), threads=1)
    return json.loads(results.metrics(run["run_id"]).read_text()).get("eval_loss")


def run_brute(config: dict, default_results: Path, out: Path, workers: int) -> ScalingFit:
    """Each calibrated run at 0.5x and 2x its lr (``workers`` processes); the best of the three per run."""
    from concurrent.futures import ProcessPoolExecutor

    table = planning.read_runs_table(default_results / "plan" / "runs.tsv")
    table = table[table["role"] == "sweep"]
    best = pipeline.read_losses(table, default_results / "runs")
    variants = []
    for row in table.to_dict("records"):
        for factor in LR_FACTORS:
            run = {**planning.run_row(table, row["run_id"]), "lr": row["lr"] * factor}
            variants.append((row["run_id"], {**run, "run_id": f"{row['run_id']}_lrx{factor:g}"}))
    with ProcessPoolExecutor(workers) as pool:
        losses = pool.map(train_variant, [config] * len(variants), [v for _, v in variants],
                          [str(out)] * len(variants))
        for (base, _), loss in zip(variants, losses):
            if loss is not None and loss < best.get(base, float("inf")):
                best[base] = loss
    results = pd.DataFrame({
        "run_id": table["run_id"], "budget": table["budget"], "N": table["params"], "D": table["tokens"],
        "C": table["achieved_flops"], "loss": table["run_id"].map(best),
    })
    return fit_table(results, budgets=config["budgets"], bootstrap=1000, degree=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--default-results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("bench_results/recipe_study"))
    parser.add_argument("--workers", type=int, default=2, help="training processes for the brute-force runs")
    parser.add_argument("--skip-v1", action="store_true", help="only the calibrated and brute-force recipes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = prepare_config(yaml.safe_load(args.config.read_text()))
    # the same fit settings for all three (a parabola per budget, 1000 resamples)
    calibrated = fit_table(pd.read_csv(args.default_results / "fit" / "runs_results.tsv", sep="\t"),
                           budgets=config["budgets"], bootstrap=1000, degree=2)
    rows = [summary("calibrated (default)", calibrated)]
    brute = run_brute(config, args.default_results, args.out / "brute", args.workers)
    rows.append(summary("brute-force lr per run", brute))
    if not args.skip_v1:
        rows.append(summary("v1 (fixed steps, assumed lr)", run_v1(config, args.out / "v1")))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    a_brute = brute.isoflop.a
    for row in rows:
        if row["a"] is not None and a_brute is not None:
            print(f"{row['recipe']}: a - a_brute = {row['a'] - a_brute:+.3f}")


if __name__ == "__main__":
    main()
