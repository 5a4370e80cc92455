"""From a predicted N* to a decision: the value of the user's size knob to train at a target budget.

The fit predicts a parameter count N*, but a user sets ``d_model`` (or whatever the knob is): the
knob value is the legal one whose N is closest to N* (:mod:`flops_fit.knob`). The tokens follow as
D = C / FLOPs-per-token of *that* size (the plan's convention), and the steps from the plan's
batch rule, so the recommendation can be trained as planned runs are.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from torch.utils.data import DataLoader

from flops_fit import heldout
from flops_fit.batch_format import BatchFormat
from flops_fit.fitting.records import Prediction, Recommended, ScalingFit, read_fit
from flops_fit.fitting.summary import backtest_line
from flops_fit.model_contract import default_probe_sizes
from flops_fit.knob import ParamCounter, closest_size
from flops_fit.planning import describe_sizes
from flops_fit.recipe import Recipe

COLUMNS = [
    "C", "size_param", "size", "N", "N_star", "N_star_lo", "N_star_hi", "D_star", "D_star_lo", "D_star_hi",
    "loss", "loss_lo", "loss_hi", "flops_per_token", "D", "tokens_per_param", "batch_size", "steps",
    "tokens", "epochs", "extrapolation_factor", "ci_level", "method", "N_star_isoflop", "N_star_parametric", "notes",
]
#: how a line names the approach that gave N*
METHOD_TEXT = {"isoflop": "isoFLOP frontier, Approach 2", "parametric": "parametric law, Approach 3"}


def _ci(estimate: Prediction | Recommended, key: str) -> tuple[float | None, float | None]:
    ci = estimate.ci.get(key)
    return (None, None) if not ci else ci


def basis(prediction: Prediction) -> Recommended:
    """The N*, D* (with intervals) to recommend and the approach that gave them; a fit.json from before
    the ``recommended`` key recommended from Approach 3."""
    if prediction.recommended is not None:
        return prediction.recommended
    return Recommended("parametric", prediction.N, prediction.D, prediction.tokens_per_param, prediction.ci)


def no_recommendation(fit: ScalingFit) -> list[str]:
    """Why nothing is recommended and which runs to add; empty when the fit recommends."""
    choice = fit.recommend
    if not fit.predictions or choice.method is not None or choice.requested is None:
        return []
    return [choice.reason] + [f"to get one, {advice}" for advice in choice.add_runs]


def recommend(
    fit: ScalingFit,
    config: dict,
    model_cls: type,
    example_inputs: Any,
    tokens_per_sample: int,
    fixed_batch: int | None = None,
    train_samples: int | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per target budget of ``fit.predictions``: N*, D*, loss with intervals, and the knob.

    ``config`` is the prepared config (model and sweep sections); ``example_inputs`` one sample's
    inputs (for the ``6N+attention``/``measured`` conventions; may be None under ``6N``);
    ``train_samples`` the training data's size in samples (None: unknown, ``epochs`` left empty).
    Returns the table (columns :data:`COLUMNS`) and warnings (FLOPs counting fallbacks, far
    extrapolations, one line for the recommendations that would repeat the data).
    """
    model = config["model"]
    recipe = Recipe.from_config(config)
    convention = recipe.flops_per_token
    seeds = model.get("sizes") or default_probe_sizes(model_cls, model["size_param"])
    counter = ParamCounter(model_cls, model["size_param"], model["kwargs"])
    rows, warnings = [], no_recommendation(fit)
    if warnings:
        return pd.DataFrame(rows, columns=COLUMNS), warnings
    for p in fit.predictions:
        rec = basis(p)
        size, _ = closest_size(model_cls, model["size_param"], model["kwargs"], rec.N, seeds, counter)
        info, notes = describe_sizes(model_cls, model["size_param"], [size], model["kwargs"], convention,
                                     example_inputs, tokens_per_sample)
        warnings += notes
        fpt = info[size].flops_per_token
        tokens_wanted = p.C / fpt
        batch, steps, _ = recipe.batch_plan(info[size].params, p.C, tokens_wanted, tokens_per_sample, fixed_batch, fpt)
        epochs = batch * steps / train_samples if train_samples else math.nan  # empty: the data's size unknown
        flags = list(p.flags) + ([repeat_caution(epochs, train_samples)] if epochs > 1 else [])
        rows.append({
            "C": p.C, "size_param": model["size_param"], "size": size, "N": info[size].params,
            "N_star": rec.N, **dict(zip(("N_star_lo", "N_star_hi"), _ci(rec, "N"))),
            "D_star": rec.D, **dict(zip(("D_star_lo", "D_star_hi"), _ci(rec, "D"))),
            "loss": p.loss, **dict(zip(("loss_lo", "loss_hi"), _ci(p, "loss"))),
            "flops_per_token": fpt, "D": tokens_wanted, "tokens_per_param": tokens_wanted / info[size].params,
            "batch_size": batch, "steps": steps, "tokens": batch * steps * tokens_per_sample, "epochs": epochs,
            "extrapolation_factor": p.extrapolation_factor,
            "ci_level": fit.ci_level,
            "method": rec.method, "N_star_isoflop": p.isoflop_N, "N_star_parametric": p.N,
            "notes": "; ".join(flags),
        })
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table, warnings + repeat_warning(table, train_samples)


def repeat_caution(epochs: float, train_samples: int) -> str:
    """A recommendation's caution when its run would see the data more than once."""
    return (f"repeats the data: {epochs:.3g} epochs of {train_samples:,} training samples; a repeated sample is "
            "worth less than a fresh one, so the predicted loss assumes data this run does not have")


def repeat_warning(table: pd.DataFrame, train_samples: int | None) -> list[str]:
    """One line for every recommended run that would repeat the data, or none."""
    epochs = pd.to_numeric(table["epochs"], errors="coerce") if len(table) else pd.Series(dtype=float)
    over = table[epochs > 1]
    if not len(over) or not train_samples:
        return []
    budgets = ", ".join(f"{c:.3g} ({e:.3g} epochs)" for c, e in zip(over["C"], epochs[epochs > 1]))
    return [f"{len(over)} of {len(table)} recommendations repeat the {train_samples:,} training samples: at C = "
            f"{budgets}; give those budgets more data"]


def _num(value: float) -> str:
    """3 significant digits, short exponent: 2.1e6 rather than 2.1e+06."""
    text = f"{value:.3g}"
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else text


def _interval(lo: Any, hi: Any, level: Any) -> str:
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return "no interval (bootstrap off or failed)"
    return f"{float(level or 0.95):.0%} CI {_num(lo)}–{_num(hi)}"


def _epochs(value: Any) -> str:
    """``, 309 epochs`` (the data's size known), else nothing."""
    return "" if value is None or pd.isna(value) else f", {float(value):.3g} epochs of the data"


def recommendation_line(row: Mapping[str, Any]) -> str:
    """The sentence a user acts on, e.g. ``for C = 1e+13, use d_model = 384 (N = 2.1e6, ...) ...``:
    which approach gave N*, the other one beside it, and every caution of the fit."""
    level = row.get("ci_level")
    method = row.get("method") or "parametric"
    other_key, other_name = (("N_star_parametric", "Approach 3") if method == "isoflop"
                             else ("N_star_isoflop", "Approach 2"))
    other = f"; {other_name}: {_num(row[other_key])}" if row.get(other_key) is not None else ""
    notes = f" CAUTION: {row['notes']}" if row.get("notes") else ""
    return (
        f"for C = {row['C']:.3g}, use {row['size_param']} = {row['size']} (N = {_num(row['N'])}; predicted "
        f"N* = {_num(row['N_star'])} from the {METHOD_TEXT[method]}, "
        f"{_interval(row['N_star_lo'], row['N_star_hi'], level)}{other}), "
        f"train on {_num(row['D'])} tokens (≈ {int(row['steps'])} steps of batch {int(row['batch_size'])}"
        f"{_epochs(row.get('epochs'))}); "
        f"predicted loss {_num(row['loss'])} (Approach 3, {_interval(row['loss_lo'], row['loss_hi'], level)})"
        f"{notes}"
    )


def recommend_for(
    fit: ScalingFit, config: dict, model_cls: type, dataset: Any, tokens_per_sample: int,
    train_samples: int | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """:func:`recommend` given the training data, from which the plan took its shapes and batch.

    A user DataLoader fixes the batch size (as in the plan); one sample's inputs are needed only to
    count FLOPs under the ``6N+attention`` and ``measured`` conventions. ``train_samples``: the
    samples training draws from (``pipeline.training_samples``), for each recommendation's epochs.
    """
    example_inputs = None
    if Recipe.from_config(config).flops_per_token != "6N":
        example_inputs = heldout.first_sample(dataset, BatchFormat.from_config(config))[0]
    fixed_batch = dataset.batch_size if isinstance(dataset, DataLoader) else None
    return recommend(fit, config, model_cls, example_inputs, tokens_per_sample, fixed_batch, train_samples)


def read_recommendations(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"size_param": str})


def print_recommendations(path: str | Path, fit_json: str | Path) -> None:
    """Print the recommendation lines to stderr, where the end of a workflow run is read (onsuccess);
    without any, why not and which runs to add (from ``fit_json``)."""
    if not Path(path).exists():
        return
    out = lines(read_recommendations(path))
    if Path(fit_json).exists():
        fit = read_fit(fit_json)
        out = (out or no_recommendation(fit)) + [backtest_line(fit.backtest)] + waves_lines(fit) + design_lines(fit)
    for line in out:
        print(f"flops-fit: {line}", file=sys.stderr)


def design_lines(fit: ScalingFit) -> list[str]:
    """The sweep's outlook (``fit.design``): the precision reached or not, what the next waves would cost."""
    outlook = (fit.design or {}).get("outlook")
    return [outlook["message"]] if outlook else []


def waves_lines(fit: ScalingFit) -> list[str]:
    """With ``sweep.precision``, one line for the sweep's waves: each one's runs, the FLOPs placed after it
    and the interval of N* it was chosen from (the summary page shows them as a table)."""
    record = fit.design or {}
    if not record.get("precision") or not record.get("waves"):
        return []
    waves = "; ".join(f"{w['wave']}: {w['runs']} runs, {w['flops_placed']:.3g} FLOPs placed"
                      + ("" if w.get("width_before") is None else f" (chosen at x{w['width_before']:.2f})")
                      for w in record["waves"])
    return [f"waves toward N* at {record['target']:.3g} within x{record['precision']['N_star']:g}: {waves}"]


def lines(table: pd.DataFrame) -> list[str]:
    """One :func:`recommendation_line` per row (NaN intervals read back from TSV become None)."""
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    return [recommendation_line(r) for r in records]

