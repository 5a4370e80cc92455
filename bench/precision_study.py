"""Precision study: what does ``sweep.precision`` spend to reach an interval, against fixed ladders?

On known laws (``bench/coverage.py``'s families: Chinchilla form, a misspecified form, a shared shift
of every run), one goal: N*'s 95 % interval at ``--target`` (1e14) at most ``--goal`` wide (hi/lo).

* **precision**: the first ``--start-budgets`` budgets of the default ladder (config/config.yaml,
  ``sizes_per_budget`` sizes each, extensions while unbracketed, one seed replicate of the smallest),
  fitted; then waves chosen by :func:`flops_fit.design.decide` exactly as the placer does (a new budget
  is a window centred as coverage.py centres a later budget; "more sizes" adds ``sizes_per_wave``
  geometric midpoints between the trained sizes nearest the fitted optimum, ``recipe.densify_params``), until it stops.
* **fixed ladders**: the default ladder continued at its own ratio to K budgets (``--budgets``,
  default 4..7), with S sizes over the same window span (``--sizes``, default 6, 8, 10): every design
  a user could have guessed, each run on the same law with its own noise draws.

FLOPs are the runs' budgets summed (replicates included, the lr calibration left out as it is the
same for all). Printed per family: the precision sweep's median FLOPs, median final width, share of
trials that reached the goal and its interval's coverage of the true N*; per fixed design the same;
then two ratios: (1) the precision sweep's median FLOPs over the cheapest fixed design that reaches the
goal at least as often; (2) per trial, the precision sweep's FLOPs over the cheapest fixed design that
reached the goal in that trial (an oracle that knows the outcome), median over the trials both reached.

    PYTHONPATH=$PWD python bench/precision_study.py [--trials 20] [--goal 2.0] [--target 1e14]
        [--bootstrap 200] [--families chinchilla,misspecified,shared_shift]

Measured 2026-12-06, ``--trials 20 --bootstrap 400`` (60 laws, 2 shared CPU cores, 1058 s); goal x2 at
1e14 (the default 4-budget sweep gives about x2.5 there):

        design  trials    flops  runs  width  reached  coverage
     precision      60 6.45e+13    56   1.93    0.783     0.933
 4 budgets x 6      60 3.38e+13    30   2.55    0.133     0.933
 5 budgets x 6      60 7.25e+13    36   2.25    0.383      0.95
 6 budgets x 6      60 1.56e+14    42   1.95     0.55     0.967
 6 budgets x 8      60 2.08e+14    56   1.75    0.667     0.933
 7 budgets x 6      60 3.36e+14    48   1.65    0.733     0.883
7 budgets x 10      60 5.59e+14    80   1.58    0.833     0.933
(8 and 10 sizes at 4-7 budgets in between, none better per FLOP)
precision sweep stops: reached 47, add 13 (still adding after the study's 12 waves); waves chosen: median 7
cheapest fixed design reaching the goal as often: 7 budgets x 10; precision / it (median FLOPs): 0.12
per trial, precision / cheapest fixed design that reached it (oracle), median: 0.78

Read: asking for the precision reaches it in 78 % of laws for a median 6.5e13 FLOPs; no fixed ladder
reaches it as often for less than 5.6e14 (8.7x more), and even an oracle that picks, per law, the
cheapest fixed ladder that happened to reach it spends 1/0.78 = 1.3x more in median. The intervals
keep their coverage (0.93). Before the stall rule climbed, sweeps gave up early (no_gain in 40 of 60,
reached 20 of 60, median 1.9e13 FLOPs): cheap waves (a rung below, more sizes) stop paying once the
law's own error dominates, and only a budget nearer the target shrinks it.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flops_fit import design as dsg, recipe  # noqa: E402


def _coverage_study():
    """bench/coverage.py (its laws, windows and noise), under a name that is not the ``coverage`` package."""
    name = "coverage_study"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "coverage.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]


cov = _coverage_study()
from flops_fit.fitting import fit_table  # noqa: E402

FAMILIES = cov.FAMILIES


def fit_of(rows: list[dict], replicates: list[dict], target: float, bootstrap: int, seed: int):
    """The fit of a simulated sweep with its replicates' noise, as the pipeline fits it."""
    runs = pd.DataFrame(rows)
    noise = cov.replicate_noise_sd(cov.Sweep(runs, pd.DataFrame(replicates)))
    return fit_table(runs[["N", "D", "C", "budget", "loss"]], budgets=sorted(set(runs["budget"])),
                     target_budgets=[target], bootstrap=bootstrap, seed=seed, noise_sd=noise)


def width_and_cover(fit, target: float, truth: float) -> tuple[float | None, bool]:
    rec = fit.prediction_at(target).recommended if fit.prediction_at(target) else None
    ci = None if rec is None else (rec.ci or {}).get("N")
    if ci is None or any(v is None or not np.isfinite(v) for v in ci):
        return None, False
    return float(ci[1] / ci[0]), bool(ci[0] <= truth <= ci[1])


def flops(rows: list[dict]) -> float:
    return float(sum(r["C"] for r in rows))


def precision_sweep(law, shift, base: cov.Design, target: float, goal: float, start: int, sizes_per_wave: int,
                    noise: float, bootstrap: int, rng: np.random.Generator, seed: int) -> dict:
    """The waves sweep.precision would place on this law, to its stop: FLOPs, width, status, waves."""
    budgets = list(base.budgets[:start])
    rows, reps = [], []
    design = replace(base, budgets=tuple(budgets))
    for i, C in enumerate(budgets):
        N, L = cov.place_budget(law, shift, design, i, noise, rng)
        rows += cov.budget_rows(C, N, L)
        if i == 0:
            reps += cov.budget_rows(C, N, cov.observe(law, shift, N, C, noise, rng), role="replicate")
    waves, history = 0, []
    while True:
        fit = fit_of(rows, reps, target, bootstrap, seed + waves)
        d = dsg.decide(fit, target, goal, placed=sorted(budgets), ladder=list(base.budgets),
                       spent=flops(rows + reps), cap=None, sizes_per_budget=base.sizes_per_budget,
                       sizes_per_wave=sizes_per_wave, history=history)
        if d.status != "add" or waves >= 12:
            status = "stalled" if d.status == "no_gain" and "did not narrow" in d.message else d.status
            return {"fit": fit, "flops": flops(rows + reps), "status": status, "waves": waves,
                    "runs": len(rows) + len(reps)}
        history.append(d.width)
        c = d.candidate
        if c.kind == "budget":
            budgets.append(c.C)
            design = replace(base, budgets=tuple(sorted(budgets)))
            N, L = cov.place_budget(law, shift, design, design.budgets.index(c.C), noise, rng)
        else:
            trained = [r["N"] for r in rows if math.isclose(r["budget"], c.C, rel_tol=1e-9)]
            entry = next((b for b in fit.isoflop.per_budget if math.isclose(b.C, c.C, rel_tol=1e-9)), None)
            centre = entry.N_opt if entry is not None and entry.N_opt else float(np.median(trained))
            N = recipe.densify_params(trained, centre, sizes_per_wave)
            L = list(cov.observe(law, shift, N, c.C, noise, rng))
        rows += cov.budget_rows(c.C, N, L)
        waves += 1


def fixed_ladder(base: cov.Design, count: int, sizes: int) -> cov.Design:
    ratio = dsg.ladder_ratio(list(base.budgets))
    budgets = tuple(base.budgets[0] * ratio ** k for k in range(count))
    return replace(base, budgets=budgets, sizes_per_budget=sizes)


def run_trial(family: str, trial: int, base: cov.Design, fixed: list[tuple[int, int]], *, target: float,
              goal: float, start: int, sizes_per_wave: int, noise: float, bootstrap: int, seed: int = 0) -> list[dict]:
    """One law: the precision sweep and every fixed design on it, one record each."""
    rng = np.random.default_rng([seed, FAMILIES.index(family), trial])
    law, shift = cov.draw_law(family, rng, base.budgets)
    truth = cov.true_optimum(law, target)[0]
    out = []
    p = precision_sweep(law, shift, base, target, goal, start, sizes_per_wave, noise, bootstrap,
                        np.random.default_rng([seed, 99, FAMILIES.index(family), trial]), seed + trial)
    width, covered = width_and_cover(p["fit"], target, truth)
    out.append({"family": family, "trial": trial, "design": "precision", "flops": p["flops"], "runs": p["runs"],
                "width": width, "covered": covered, "status": p["status"], "waves": p["waves"]})
    for count, sizes in fixed:
        design = fixed_ladder(base, count, sizes)
        sweep = cov.place_sweep(law, shift, design, noise, 1,
                                np.random.default_rng([seed, count, sizes, FAMILIES.index(family), trial]))
        fit = fit_of(sweep.runs.to_dict("records"), sweep.replicates.to_dict("records"), target, bootstrap,
                     seed + trial)
        width, covered = width_and_cover(fit, target, truth)
        out.append({"family": family, "trial": trial, "design": f"{count} budgets x {sizes}",
                    "flops": flops(sweep.runs.to_dict("records") + sweep.replicates.to_dict("records")),
                    "runs": len(sweep.runs) + len(sweep.replicates), "width": width, "covered": covered,
                    "status": None, "waves": None})
    return out


def summarise(records: pd.DataFrame, goal: float) -> pd.DataFrame:
    r = records.assign(reached=records["width"].le(goal))
    return (r.groupby("design", sort=False)
             .agg(trials=("trial", "size"), flops=("flops", "median"), runs=("runs", "median"),
                  width=("width", "median"), reached=("reached", "mean"), coverage=("covered", "mean"))
             .reset_index())


def ratios(records: pd.DataFrame, goal: float) -> tuple[str, float | None, float | None]:
    """(the cheapest fixed design reaching the goal as often as the precision sweep, median-FLOPs ratio
    against it, median per-trial ratio against the oracle's cheapest reaching fixed design)."""
    summary = summarise(records, goal).set_index("design")
    mine = summary.loc["precision"]
    fixed = summary.drop(index="precision")
    enough = fixed[fixed["reached"] >= mine["reached"] - 1e-9].sort_values("flops")
    name = enough.index[0] if len(enough) else "none"
    ratio = float(mine["flops"] / enough["flops"].iloc[0]) if len(enough) else None
    r = records.assign(reached=records["width"].le(goal))
    per_trial = []
    for _, g in r.groupby(["family", "trial"]):
        p = g[g["design"] == "precision"].iloc[0]
        ok = g[(g["design"] != "precision") & g["reached"]]
        if p["reached"] and len(ok):
            per_trial.append(p["flops"] / ok["flops"].min())
    return name, ratio, float(np.median(per_trial)) if per_trial else None


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="laws per family")
    ap.add_argument("--goal", type=float, default=2.0, help="widest acceptable N* interval (hi/lo)")
    ap.add_argument("--target", type=float, default=1e14)
    ap.add_argument("--start-budgets", type=int, default=3)
    ap.add_argument("--sizes-per-wave", type=int, default=4)
    ap.add_argument("--budgets", default="4,5,6,7", help="fixed ladders: budget counts")
    ap.add_argument("--sizes", default="6,8,10", help="fixed ladders: sizes per budget")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    fixed = [(int(k), int(s)) for k in args.budgets.split(",") for s in args.sizes.split(",")]
    base = cov.Design.default()
    start = time.perf_counter()
    records = []
    for family in [f for f in args.families.split(",") if f]:
        for t in range(args.trials):
            records += run_trial(family, t, base, fixed, target=args.target, goal=args.goal, start=args.start_budgets,
                                 sizes_per_wave=args.sizes_per_wave, noise=args.noise, bootstrap=args.bootstrap,
                                 seed=args.seed)
        print(f"{family}: {args.trials} trials done", file=sys.stderr, flush=True)
    records = pd.DataFrame(records)
    print(f"goal: N* interval at {args.target:.3g} within x{args.goal:g}; default ladder "
          f"{', '.join(f'{b:.3g}' for b in base.budgets)} (ratio {dsg.ladder_ratio(list(base.budgets)):.3g}); "
          f"precision starts from {args.start_budgets} budgets; noise {args.noise}; bootstrap {args.bootstrap}")
    pd.set_option("display.width", 200)
    print(summarise(records, args.goal).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    mine = records[records["design"] == "precision"]
    print("precision sweep stops: " + ", ".join(f"{k} {v}" for k, v in mine["status"].value_counts().items())
          + f"; waves chosen: median {mine['waves'].median():.0f}")
    name, ratio, oracle = ratios(records, args.goal)
    print(f"cheapest fixed design reaching the goal as often: {name}; precision / it (median FLOPs): "
          + ("n/a" if ratio is None else f"{ratio:.2f}"))
    print("per trial, precision / cheapest fixed design that reached it (oracle), median: "
          + ("n/a" if oracle is None else f"{oracle:.2f}"))
    print(f"run time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
