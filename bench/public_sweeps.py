"""Do flops-fit's 95 % intervals hold on real public isoFLOP sweeps? Predict each sweep's largest
budget from its other budgets and check the interval against what that budget's own profile shows.

For each sweep:

* full fit (``fit_table`` on every run): the observed optimum at the held-out budget is the entry of
  ``fit.isoflop.per_budget`` with that C (``N_opt``, ``loss_opt``; a sweep whose largest budget is
  not ``interior`` is skipped with the reason);
* held-out fit: ``fit_table`` on the runs of all but the ``--hold`` largest budgets (1: the largest
  left out; 2: the two largest left out, the largest predicted: a longer extrapolation) with
  ``target_budgets=[largest C]``. Predicted N* is ``predictions[0].recommended.N`` with interval
  ``recommended.ci["N"]`` (None: a miss, counted apart as "no interval"); predicted loss is
  ``predictions[0].loss`` (Approach 3 at its compute-optimal point) with ``ci["loss"]``.

Only ``fit_table``'s public arguments and these record keys are read, so the script keeps working
while the interval method inside ``fit_table`` changes. The observed optimum is read from the full
table's fit with the profile degree the prediction was made with (a cubic and a parabola read one
budget's optimum up to 20 % apart). It has its own error (the held-out profile's fit), which is not
added to the interval: "inside" asks whether the interval covers the profile's point estimate.

Run (on 2 shared cores: about 20 s with the defaults, about 2 min with --compare-degrees):

    PYTHONPATH=$PWD python bench/public_sweeps.py [--data DIR] [--degree auto|2|3] [--bootstrap 400]
        [--hold 1|2] [--compare-degrees] [--keep-outliers] [--only SUBSTRING]

Data: read from ``../shared/notes/data`` relative to the repository root (never copied into the
repository); ``--data DIR`` overrides it, and /work/shared/notes/data is the fallback when the
relative folder is absent. Licences as the data folder's README records them ("none found": no
LICENSE file in the repository; use as a test fixture, cite, do not redistribute).

Sources and conversions
-----------------------
Open-Athena combined isoFLOP tables: repository Open-Athena/scaling-law-analysis, paths
``data/isoflops/extract/isoflops.csv`` (file ``openathena_isoflops_combined_extract.csv``) and
``data/isoflops/transform/isoflops.csv`` (``openathena_isoflops_combined_transform.csv``: the same
rows with ``outlier`` and ``reason``), commit 3e0656ee3dce1a2c89aa67691920f5eb9d30f0fc, licence: none
found. Columns ``tokens, params, budget, loss`` become D, N, C = budget (the snapped isoFLOP budget
the source assigns), budget = the same label. Rows the transform marks ``outlier`` are dropped (and
listed) unless ``--keep-outliers``: that is Open-Athena's own QC (off_center, near_duplicate_params,
too_few_points, weak_curvature, spline_outlier, exact_duplicate, too_few_post_qc), not the original
authors'. Sweeps taken from it:

* ``chinchilla_epoch``: ``source == 'epochai_chinchilla'``, the Epoch AI SVG extraction of Chinchilla
  Figure 4 (epoch-research/analyzing-chinchilla ``data/svg_extracted_data.csv``, commit 92258837…,
  licence none found), snapped to the 9 Chinchilla budgets 6e18 … 3e21 by Open-Athena (C = 6ND
  exactly: D was derived from the label).
* ``chinchilla_mlscalefit``: ``source == 'ml_scalefit'``, apple/ml-scalefit ``data/chinchilla.csv``
  (another extraction of the same figure), snapped to the same budgets; its 6ND is within 0.90–1.11
  of the label. The same training runs as ``chinchilla_epoch`` (family ``chinchilla``).
* ``llama3``: ``experiment == 'llama_3__raw_loss'``, Llama 3 paper Figure 2 digitised by
  eric-czech/llama3_isoflop_extraction (``isoflops_points.csv``, commit 1bc1755b…, licence none
  found): 10 budgets 6e18 … 1e22, N = C/(6D); the loss is the figure's validation loss (a
  normalised NLL, about 0.7–0.95), not nats per token.
* ``marin_comma``, ``marin_dclm``, ``marin_nemotron``: ``source == 'marin_202603'``, Marin's W&B
  "Scaling Ladders" isoFLOP runs (vendored in Open-Athena; raw exports
  ``data/isoflops/extract/marin_202603/raw/isoflop-*.csv``; Marin code Apache-2.0, data licence none
  found). The budget label is already in the 6ND convention (the run names give forward-only
  FLOPs, about 2ND; Open-Athena multiplied by 3); each run's 6ND is 0.82–1.07 of its label. Loss:
  Paloma macro-average.
* ``misfitting``: ``source == 'misfitting'``, hadasah/scaling_laws ((Mis)Fitting survey, Li et al.
  ICLR 2025, commit 1f3708c0…, licence none found) interpolated by Open-Athena at 26 isoFLOP budgets
  8.5e16 … 2.2e19 from the checkpoints of 11 sizes (C = 6ND exactly).

Porian et al. 2024 (``porian2024_isoflop_points.csv``): derived from formll/resolving-scaling-law-
discrepancies ``data/summary_df.pickle.xz``, ``summary_df_att.pickle.xz``,
``summary_df_kaplan_tuned_hparams.pickle.xz``, ``summary_df_owt2.pickle.xz``, commit
0dc60d91b8a525858a3067fc9e4a46ff5374cc6f, licence MIT. One sweep per configuration (dataset, hparams,
warmup, decay, param_count, loss_split), all 15 of them (each has 11–12 budgets 1.25e16·2^k ≤
2.56e19); N = n (in the configuration's parameter convention), D = t, C = budget = flops (t was
derived as flops/(6n), so C = 6ND exactly), loss = the loss interpolated from the training curves
at that budget. The configurations that differ only in param_count or loss_split are views of the
same training runs (family = dataset/hparams/warmup/decay).

Gemstones (McLeish et al. 2025, ``gemstones_isoflop_interpolated.csv``): derived from
mcleish7/gemstone-scaling-laws ``wandb_dfs/wandb_df_for_fitting_hot_100b+_477.jsonl`` (``gemstones``:
22 model shapes, width x depth 256x23 ... 3072x12, N = ``params_active_precise`` 48M-2.0B with
embeddings, trained at constant learning rate to 350B tokens) and
``wandb_dfs/wandb_df_for_fitting_lr_ablation_hot_477.jsonl`` (``gemstones_lr_half``: 20 of the shapes at
half the learning rate, to 100B tokens), commit 5f420478f6057b0cbb4d13405fb10ca64675bccb, licence MIT.
The source holds each run's validation loss every 477 steps (2.0e9 tokens); the runs are not on
isoFLOP budgets, so the CSV reads each run's curve at C = 1e18 * 2^k: D = C/(6N), loss linearly
interpolated in ln(tokens) between the two neighbouring logged points (2e9 tokens apart), only where
D lies inside the logged range (no extrapolation); ``bench/derive_gemstones.py`` writes it from a
``fetch`` of that repository. A data folder without it runs the other sweeps. C = budget = 6ND exactly. The loader keeps a
budget only when at least ``GEMSTONES_MIN_RUNS`` = 10 runs reach it, a rule on N and the token
ranges alone (no loss is looked at): ``gemstones`` keeps 2e18 ... 5.12e20 (9 budgets), dropping
1e18 (3 runs), 1.02e21 (9), 2.05e21 (6), 4.1e21 (1); ``gemstones_lr_half`` keeps 2e18 ... 2.56e20 (8),
dropping 1e18 (3), 5.12e20 (6), 1.02e21 (3). These are losses of runs without learning-rate decay
(like Porian's ``const`` configurations): above what a run decayed at D would reach. Each sweep is its
own family (different training runs). The source marks no outliers.

Before the calibrated intervals (main at 9352243, observation read with the full fit's own degree;
bootstrap 400, seed 0, degree auto, Open-Athena outliers dropped), 22 sweeps:
hold 1: N* inside 18/22 (one per family 11/15), loss inside 5/22 (3/15), median N* error 1.048;
hold 2: N* inside 15/22 (9/15), loss inside 6/22 (3/15), median N* error 1.069;
--keep-outliers (hold 1): 19 evaluated (both Chinchilla extractions and misfitting skipped: their
largest budget does not bracket its optimum), N* inside 13/19, loss 5/19.
--compare-degrees (hold 1), N* inside: degree 2 12/22, degree 3 18/22, auto 18/22; median N* error
1.103, 1.042, 1.048. The N* interval holds less often than 95 % and the loss interval far less
(Approach 3's loss misses by 0.01-0.3 nats with intervals of 0.004-0.26).

Measured 2026-12-06 with the two Gemstones sweeps added (24 sweeps, 17 families; bootstrap 400, seed
0, hold 1, outliers dropped; the interval method of this commit, so the older numbers above do not
compare): degree auto N* inside 22/24 (one per family 15/17), loss inside 24/24 (17/17), median N*
error 1.057, median |dL| 0.067; gemstones pred/obs N* 0.891 (interval x1.59, inside), dL +0.099
(width 0.33, inside); gemstones_lr_half 1.047 (x1.81, inside), dL +0.085 (width 0.34, inside).
--compare-degrees, N* inside: degree 2 21/24, degree 3 23/24, auto 22/24; median N* error 1.103,
1.043, 1.057; Approach 2's a: gemstones 0.631 [0.554, 0.709] (degree 2 = auto), gemstones_lr_half
0.605 [0.493, 0.697].

Totals are over all sweeps and over one sweep per family (the first listed), since sweeps of one
family are not independent checks.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from flops_fit.fitting import fit_table

ROOT = Path(__file__).resolve().parents[1]
DATA_RELATIVE = ROOT / ".." / "shared" / "notes" / "data"
DATA_FALLBACK = Path("/work/shared/notes/data")

OA_EXTRACT = "openathena_isoflops_combined_extract.csv"
OA_TRANSFORM = "openathena_isoflops_combined_transform.csv"
PORIAN = "porian2024_isoflop_points.csv"
GEMSTONES = "gemstones_isoflop_interpolated.csv"
#: a Gemstones budget is kept when at least this many runs' logged curves reach it (a rule on N and the
#: token ranges only, fixed before any fit; see the docstring)
GEMSTONES_MIN_RUNS = 10
OA_CITE = ("Open-Athena/scaling-law-analysis data/isoflops/{extract,transform}/isoflops.csv "
           "@3e0656ee3dce1a2c89aa67691920f5eb9d30f0fc")
MIN_BUDGETS = 4


class Sweep(NamedTuple):
    """One public isoFLOP sweep; ``df`` has columns N, D, loss, C, budget (``df.attrs``: ``family``, the
    set of training runs it comes from, and ``dropped``, what was left out and why)."""

    name: str
    source: str
    licence: str
    df: pd.DataFrame


def default_data_dir() -> Path:
    return DATA_RELATIVE if DATA_RELATIVE.is_dir() else DATA_FALLBACK


def _table(N, D, loss, C) -> pd.DataFrame:
    df = pd.DataFrame({"N": np.asarray(N, float), "D": np.asarray(D, float), "loss": np.asarray(loss, float),
                       "C": np.asarray(C, float)})
    df["budget"] = df["C"]
    return df.sort_values(["budget", "N"]).reset_index(drop=True)


@functools.cache
def _openathena(data: Path) -> pd.DataFrame:
    """The transform table (the extract's rows plus ``outlier``, ``reason``), checked against the extract."""
    tr = pd.read_csv(data / OA_TRANSFORM)
    ex = pd.read_csv(data / OA_EXTRACT)
    key = ["experiment", "budget", "params", "tokens", "loss"]
    if len(tr) != len(ex) or not tr[key].sort_values(key).reset_index(drop=True).equals(
            ex[key].sort_values(key).reset_index(drop=True)):
        raise ValueError(f"{OA_TRANSFORM} does not hold the same rows as {OA_EXTRACT}")
    return tr


def _from_openathena(data: Path, name: str, family: str, mask_fn: Callable[[pd.DataFrame], pd.Series],
                     cite: str, licence: str, keep_outliers: bool) -> Sweep:
    t = _openathena(data)
    t = t[mask_fn(t)]
    out = t["outlier"].astype(bool).to_numpy()
    dropped = ""
    if out.any() and not keep_outliers:
        counts = t.loc[out, "reason"].value_counts()
        dropped = (f"{out.sum()} of {len(t)} rows marked outlier by Open-Athena's transform dropped: "
                   + ", ".join(f"{r} {n}" for r, n in counts.items()))
        gone = sorted(set(t["budget"]) - set(t.loc[~out, "budget"]))
        if gone:
            dropped += "; budgets left without runs: " + ", ".join(f"{b:.3g}" for b in gone)
        t = t[~out]
    df = _table(t["params"], t["tokens"], t["loss"], t["budget"])
    df.attrs.update(family=family, dropped=dropped)
    return Sweep(name, f"{cite}; via {OA_CITE}", licence, df)


def chinchilla_epoch(data: Path, keep_outliers: bool = False) -> Sweep:
    return _from_openathena(data, "chinchilla_epoch", "chinchilla", lambda t: t["source"] == "epochai_chinchilla",
                            "Hoffmann et al. 2022 Fig. 4, Epoch AI SVG extraction (epoch-research/analyzing-"
                            "chinchilla data/svg_extracted_data.csv @92258837)", "none found", keep_outliers)


def chinchilla_mlscalefit(data: Path, keep_outliers: bool = False) -> Sweep:
    return _from_openathena(data, "chinchilla_mlscalefit", "chinchilla", lambda t: t["source"] == "ml_scalefit",
                            "Hoffmann et al. 2022 Fig. 4 (apple/ml-scalefit data/chinchilla.csv)", "none found",
                            keep_outliers)


def llama3(data: Path, keep_outliers: bool = False) -> Sweep:
    return _from_openathena(data, "llama3", "llama3", lambda t: t["experiment"] == "llama_3__raw_loss",
                            "Llama 3 paper Fig. 2 digitised (eric-czech/llama3_isoflop_extraction "
                            "isoflops_points.csv @1bc1755b), N = C/(6D)", "none found", keep_outliers)


def _marin(data: Path, dataset: str, keep_outliers: bool) -> Sweep:
    return _from_openathena(data, f"marin_{dataset}", f"marin_{dataset}",
                            lambda t: (t["source"] == "marin_202603") & (t["dataset"] == dataset),
                            f"Marin W&B 'Scaling Ladders' isoflop-{dataset} runs (raw export vendored at "
                            f"data/isoflops/extract/marin_202603/raw/isoflop-{dataset}.csv); budget x3 = 6ND",
                            "none found (Marin code Apache-2.0)", keep_outliers)


def marin_comma(data: Path, keep_outliers: bool = False) -> Sweep:
    return _marin(data, "comma", keep_outliers)


def marin_dclm(data: Path, keep_outliers: bool = False) -> Sweep:
    return _marin(data, "dclm", keep_outliers)


def marin_nemotron(data: Path, keep_outliers: bool = False) -> Sweep:
    return _marin(data, "nemotron", keep_outliers)


def misfitting(data: Path, keep_outliers: bool = False) -> Sweep:
    return _from_openathena(data, "misfitting", "misfitting", lambda t: t["source"] == "misfitting",
                            "(Mis)Fitting survey, Li et al. 2025 (hadasah/scaling_laws data/scaling_results.csv "
                            "@1f3708c0), interpolated at isoFLOP budgets by Open-Athena", "none found",
                            keep_outliers)


PORIAN_COLUMNS = ("dataset", "hparams", "warmup", "decay", "param_count", "loss_split")
#: every configuration in the file (dataset, hparams, warmup, decay, param_count, loss_split)
PORIAN_CONFIGS = (
    ("rw", "tuned", "short", "const", "standard", "val"),
    ("rw", "tuned", "short", "const", "attention", "train"),
    ("rw", "tuned", "long", "const", "kaplan", "train"),
    ("rw", "base", "short", "chinchilla", "standard", "val"),
    ("rw", "base", "short", "chinchilla", "attention", "train"),
    ("rw", "base", "short", "kaplan", "standard", "val"),
    ("rw", "base", "short", "kaplan", "attention", "train"),
    ("rw", "base", "long", "kaplan", "standard", "val"),
    ("rw", "base", "long", "kaplan", "attention", "train"),
    ("rw", "base", "long", "kaplan", "kaplan", "train"),
    ("owt2", "tuned", "short", "const", "standard", "val"),
    ("owt2", "base", "short", "chinchilla", "standard", "val"),
    ("owt2", "base", "short", "kaplan", "standard", "val"),
    ("owt2", "base", "long", "kaplan", "standard", "val"),
    ("owt2", "base", "long", "kaplan", "kaplan", "train"),
)


def porian(data: Path, config: tuple[str, ...], keep_outliers: bool = False) -> Sweep:
    """One Porian et al. 2024 configuration (the source marks no outliers: ``keep_outliers`` is moot)."""
    t = pd.read_csv(data / PORIAN)
    mask = np.logical_and.reduce([t[c] == v for c, v in zip(PORIAN_COLUMNS, config)])
    t = t[mask]
    if t.empty:
        raise ValueError(f"{PORIAN}: no rows for configuration {config}")
    df = _table(t["n"], t["t"], t["loss"], t["flops"])
    df.attrs.update(family="porian/" + "/".join(config[:4]), dropped="")
    name = "porian/" + "/".join(config)
    return Sweep(name, "Porian et al. 2024 (formll/resolving-scaling-law-discrepancies data/summary_df*.pickle.xz "
                       f"@0dc60d91, source_file {t['source_file'].iloc[0]}), derived points", "MIT", df)


def _gemstones(data: Path, name: str, curve: str, what: str) -> Sweep:
    """One Gemstones curve set; budgets that fewer than ``GEMSTONES_MIN_RUNS`` runs reach are dropped (listed)."""
    t = pd.read_csv(data / GEMSTONES)
    t = t[t["curve"] == curve]
    if t.empty:
        raise ValueError(f"{GEMSTONES}: no rows for curve {curve}")
    counts = t.groupby("C")["run_name"].nunique()
    few = counts[counts < GEMSTONES_MIN_RUNS]
    dropped = ""
    if len(few):
        dropped = (f"budgets reached by fewer than {GEMSTONES_MIN_RUNS} runs dropped: "
                   + ", ".join(f"{c:.3g} ({n})" for c, n in few.items()))
        t = t[~t["C"].isin(few.index)]
    df = _table(t["N"], t["D"], t["loss"], t["C"])
    df.attrs.update(family=name, dropped=dropped)
    return Sweep(name, f"Gemstones, McLeish et al. 2025 (mcleish7/gemstone-scaling-laws wandb_dfs/wandb_df_for_fitting_"
                       f"{curve}.jsonl @5f420478), {what}; loss interpolated in ln(tokens) at C = 1e18*2^k", "MIT", df)


def gemstones(data: Path, keep_outliers: bool = False) -> Sweep:
    """Gemstones constant-LR runs, 22 shapes to 350B tokens (the source marks no outliers)."""
    return _gemstones(data, "gemstones", "hot_100b+_477", "22 shapes, constant LR, to 350B tokens")


def gemstones_lr_half(data: Path, keep_outliers: bool = False) -> Sweep:
    """Gemstones' half-learning-rate ablation, 20 shapes to 100B tokens (no outliers marked)."""
    return _gemstones(data, "gemstones_lr_half", "lr_ablation_hot_477", "20 shapes at half the LR, to 100B tokens")


LOADERS: tuple[Callable[..., Sweep], ...] = (
    chinchilla_epoch, chinchilla_mlscalefit, llama3, marin_comma, marin_dclm, marin_nemotron, misfitting,
    *(functools.partial(porian, config=c) for c in PORIAN_CONFIGS), gemstones, gemstones_lr_half,
)


def load_all(data: Path, keep_outliers: bool = False) -> tuple[list[Sweep], list[str]]:
    """Every sweep whose source file is in ``data``, and the names of the absent files (a copy of the
    public data folder may lack some, e.g. the derived Gemstones table: ``bench/derive_gemstones.py``)."""
    sweeps, absent = [], []
    for load in LOADERS:
        try:
            sweeps.append(load(data, keep_outliers=keep_outliers))
        except FileNotFoundError as err:
            absent.append(Path(err.filename).name)
    return sweeps, sorted(set(absent))


# ----------------------------------------------------------------------------------------------------
# evaluation


def _inside(value: float | None, ci) -> bool:
    return ci is not None and value is not None and ci[0] <= value <= ci[1]


def evaluate(df: pd.DataFrame, *, hold: int = 1, degree: int | str = "auto", bootstrap: int = 400,
             seed: int = 0, full=None) -> dict:
    """Predict the largest budget of ``df`` from all but its ``hold`` largest budgets.

    Returns a dict: ``skipped`` (a reason, or None) and, when not skipped, the observed and predicted
    N* and loss with their intervals and whether each interval holds the observation, and Approach 2's
    exponent ``a`` with interval from the full fit (``full``: a full fit already made with this
    degree, to reuse).
    """
    budgets = np.sort(df["budget"].unique())
    out: dict = {"n_budgets": int(budgets.size), "n_runs": int(len(df)), "skipped": None}
    if budgets.size < hold + 2:
        out["skipped"] = f"{budgets.size} budgets: holding out {hold} leaves fewer than 2 to fit"
        return out
    held = float(budgets[-1])
    out["held_C"] = held
    if full is None:
        full = fit_table(df, bootstrap=bootstrap, seed=seed, degree=degree)
    out["a"], out["a_ci"] = full.isoflop.a, full.isoflop.ci.get("a")
    train = df[df["budget"] < budgets[-hold]]
    out["fit_budgets"] = int(train["budget"].nunique())
    fit = fit_table(train, target_budgets=[held], bootstrap=bootstrap, seed=seed, degree=degree)
    # the observation is read with the profile degree the prediction was made with: a cubic and a
    # parabola read the same budget's optimum up to 20 % apart (Marin), which is not prediction error
    used = fit.isoflop.degree_used or 2
    observed = full if full.isoflop.degree_used == used else fit_table(df, bootstrap=0, degree=used)
    obs = next((e for e in observed.isoflop.per_budget if math.isclose(e.C, held, rel_tol=1e-9)), None)
    if obs is None or not obs.interior:
        out["skipped"] = (f"held-out budget C={held:.3g} has no interior optimum "
                          f"({'no profile' if obs is None else obs.reason})")
        return out
    out["obs_N"], out["obs_loss"] = obs.N_opt, obs.loss_opt
    out["obs_sd_lnN"] = getattr(obs, "sd_lnN_opt", None)  # informational
    pred = fit.predictions[0]
    out["extrapolation"] = held / float(train["budget"].max())
    rec = pred.recommended
    out["pred_N"] = None if rec is None else rec.N
    out["N_ci"] = None if rec is None else rec.ci.get("N")
    out["N_note"] = "no prediction" if rec is None else ("no interval" if out["N_ci"] is None else "")
    out["ratio"] = None if out["pred_N"] is None else out["pred_N"] / obs.N_opt
    out["N_width"] = None if out["N_ci"] is None else out["N_ci"][1] / out["N_ci"][0]
    out["N_inside"] = _inside(obs.N_opt, out["N_ci"])
    out["pred_loss"], out["loss_ci"] = pred.loss, pred.ci.get("loss")
    out["loss_err"] = pred.loss - obs.loss_opt
    out["loss_width"] = None if out["loss_ci"] is None else out["loss_ci"][1] - out["loss_ci"][0]
    out["loss_inside"] = _inside(obs.loss_opt, out["loss_ci"])
    out["loss_note"] = "" if out["loss_ci"] is not None else "no interval"
    return out


def _f(x, fmt: str, width: int) -> str:
    return ("-" if x is None else format(x, fmt)).rjust(width)


def _yn(flag: bool, note: str = "") -> str:
    return note if note else ("yes" if flag else "NO")


HEADER = (f"{'sweep':<50} {'bud':>3} {'runs':>4} {'C held':>8} {'xC':>4} {'pred/obs N*':>11} {'N* hi/lo':>8} "
          f"{'in?':>11} {'dL pred-obs':>11} {'L width':>8} {'in?':>11}")


def row(name: str, r: dict) -> str:
    if r["skipped"]:
        return f"{name:<50} {r['n_budgets']:>3} {r['n_runs']:>4}  skipped: {r['skipped']}"
    return (f"{name:<50} {r['n_budgets']:>3} {r['n_runs']:>4} {r['held_C']:>8.2g} {r['extrapolation']:>4.1f} "
            f"{_f(r['ratio'], '.3f', 11)} {_f(r['N_width'], '.2f', 8)} {_yn(r['N_inside'], r['N_note']):>11} "
            f"{r['loss_err']:>+11.4f} {_f(r['loss_width'], '.4f', 8)} {_yn(r['loss_inside'], r['loss_note']):>11}")


def totals(results: list[tuple[Sweep, dict]]) -> list[str]:
    lines = []
    first: dict[str, tuple[Sweep, dict]] = {}  # per family: its first evaluated sweep, else its first sweep
    for sw, r in results:
        fam = sw.df.attrs["family"]
        if fam not in first or (first[fam][1]["skipped"] and not r["skipped"]):
            first[fam] = (sw, r)
    for label, group in (("all sweeps", results), ("one per family", list(first.values()))):
        done = [r for _, r in group if not r["skipped"]]
        if not done:
            lines.append(f"{label}: no sweep evaluated")
            continue
        n = len(done)
        n_in = sum(r["N_inside"] for r in done)
        l_in = sum(r["loss_inside"] for r in done)
        no_n = sum(r["N_note"] != "" for r in done)
        no_l = sum(r["loss_note"] != "" for r in done)
        errs = [max(r["ratio"], 1 / r["ratio"]) for r in done if r["ratio"]]
        lines.append(f"{label}: {n} evaluated ({len(group) - n} skipped); N* inside {n_in}/{n} = {n_in / n:.0%}"
                     f" (no interval {no_n}); loss inside {l_in}/{n} = {l_in / n:.0%} (no interval {no_l}); "
                     f"median N* point error max(r,1/r) {np.median(errs) if errs else float('nan'):.3f}; "
                     f"median |dL| {np.median([abs(r['loss_err']) for r in done]):.4f}")
    return lines


def _ci_text(ci) -> str:
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def compare_degrees(sweeps: list[Sweep], args) -> None:
    degrees: tuple[int | str, ...] = (2, 3, "auto")
    print(f"\n# profile degree: Approach 2's exponent a (full fit) and the held-out N* (hold {args.hold}), "
          f"bootstrap {args.bootstrap}")
    head = f"{'sweep':<50}" + "".join(f" | {'deg ' + str(d):<38}" for d in degrees)
    sub = f"{'':<50}" + "".join(f" | {'a':>6} {'a 95% CI':<16} {'N* r':>6} {'in?':>7}" for _ in degrees)
    print(head)
    print(sub)
    per_degree: dict = {d: [] for d in degrees}
    for sw in sweeps:
        cells = []
        for d in degrees:
            r = evaluate(sw.df, hold=args.hold, degree=d, bootstrap=args.bootstrap, seed=args.seed)
            per_degree[d].append((sw, r))
            a = r.get("a")
            if r["skipped"] and "a" not in r:
                cells.append(f" | {'skipped':<38}")
                continue
            inside = "skip" if r["skipped"] else _yn(r["N_inside"], r["N_note"])
            cells.append(f" | {_f(a, '.3f', 6)} {_ci_text(r.get('a_ci')):<16} {_f(r.get('ratio'), '.3f', 6)} "
                         f"{inside:>7}")
        print(f"{sw.name:<50}" + "".join(cells), flush=True)
    for d in degrees:
        for line in totals(per_degree[d]):
            print(f"degree {d}: {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder of the public data files "
                        f"(default: {DATA_RELATIVE}, else {DATA_FALLBACK})")
    parser.add_argument("--degree", choices=("auto", "2", "3"), default="auto")
    parser.add_argument("--bootstrap", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hold", type=int, choices=(1, 2), default=1,
                        help="budgets held out (the largest is predicted; 2: from all but the two largest)")
    parser.add_argument("--compare-degrees", action="store_true", help="degree 2, 3 and auto side by side")
    parser.add_argument("--keep-outliers", action="store_true",
                        help="keep the rows Open-Athena's transform marks as outliers")
    parser.add_argument("--only", default=None, help="only sweeps whose name contains this")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    if not (data / OA_EXTRACT).is_file():
        print(f"public data not found in {data} (use --data DIR)", file=sys.stderr)
        return 2
    degree: int | str = args.degree if args.degree == "auto" else int(args.degree)
    t0 = time.perf_counter()
    sweeps, absent = load_all(data, args.keep_outliers)
    for name in absent:
        print(f"{name}: absent from {data}, its sweeps left out")
    sweeps = [sw for sw in sweeps if args.only is None or args.only in sw.name]
    few = [sw for sw in sweeps if sw.df["budget"].nunique() < MIN_BUDGETS]
    for sw in few:
        print(f"{sw.name}: {sw.df['budget'].nunique()} budgets (< {MIN_BUDGETS}), left out")
    sweeps = [sw for sw in sweeps if sw not in few]
    print(f"data: {data.resolve()}")
    for sw in sweeps:
        if sw.df.attrs["dropped"]:
            print(f"{sw.name}: {sw.df.attrs['dropped']}")
    if args.compare_degrees:
        compare_degrees(sweeps, args)
    else:
        print(f"\n# hold {args.hold}: predict the largest budget from all but the {args.hold} largest; "
              f"degree {args.degree}, bootstrap {args.bootstrap}, seed {args.seed}; 95 % intervals")
        print("# xC: held-out budget / largest fitted budget; N* hi/lo: interval width as a factor")
        print(HEADER)
        results = []
        for sw in sweeps:
            r = evaluate(sw.df, hold=args.hold, degree=degree, bootstrap=args.bootstrap, seed=args.seed)
            results.append((sw, r))
            print(row(sw.name, r), flush=True)
        for line in totals(results):
            print(line)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
