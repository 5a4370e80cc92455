"""Sweep mechanics: turn budgets and sizes into exact runs (the runs table).

For each budget the recipe picks sizes; here each size is instantiated on the ``meta`` device (no
memory, no data) to count its parameters and FLOPs per token, the token count D = C / FLOPs-per-token
is rounded to whole batches, and the *achieved* FLOPs are recorded next to the planned ones.
Run ids depend only on (budget, size), so growing the config adds rows and never renames a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flops_fit.recipe import Recipe
from flops_fit.flops import flops_per_token, matmul_params, total_params
from flops_fit.knob import ParamCounter, as_size, closest_size
from flops_fit.model_contract import default_probe_sizes, instantiate

#: Column order of results/plan/runs.tsv (documented in docs/architecture.md).
RUN_COLUMNS = [
    "run_id", "budget", "size_param", "size", "params", "params_total", "flops_per_token",
    "flops_convention", "tokens_per_sample", "batch_size", "steps", "tokens", "lr", "warmup_steps",
    "planned_flops", "achieved_flops", "seed", "role", "wave",
]
#: what a row is for: an IsoFLOP point, an extra seed of one (noise), an lr-calibration run, or the
#: recommended run trained to check the prediction (flops_fit.verify; never fitted)
ROLES = ("sweep", "replicate", "calibration", "verify")
#: bookkeeping columns that say when or why a run was planned, not how it trains
BOOKKEEPING = ("role", "wave")


@dataclass(frozen=True)
class SizeInfo:
    params: int
    params_total: int
    flops_per_token: float


def run_id(budget: float, size_param: str, size: float, suffix: str = "") -> str:
    """Stable, readable, path-safe id, e.g. ``C3e11_d_model48`` or ``C6.5e11_width0.5_seed1``."""
    mantissa, exponent = f"{budget:.4g}".split("e") if "e" in f"{budget:.4g}" else (f"{budget:.4g}", "0")
    return f"C{mantissa}e{int(exponent)}_{size_param}{as_size(size)}{suffix}"


def describe_sizes(
    model_cls: type,
    size_param: str,
    sizes: list[float],
    model_kwargs: dict,
    convention: str,
    example_inputs: Any,
    tokens_per_sample: int,
) -> tuple[dict[float, SizeInfo], list[str]]:
    """Parameter counts and FLOPs per token of every size, measured on the meta device."""
    info: dict[float, SizeInfo] = {}
    warnings: list[str] = []
    for size in sizes:
        model = instantiate(model_cls, size_param, as_size(size), model_kwargs, device="meta")
        fpt, notes = flops_per_token(
            model, convention, example_inputs=example_inputs, tokens_per_sample=tokens_per_sample
        )
        warnings += [f"{size_param}={as_size(size)}: {n}" for n in notes]
        info[as_size(size)] = SizeInfo(matmul_params(model), total_params(model), float(fpt))
    return info, warnings


class SizeCatalog:
    """The sizes a sweep may train: their N and FLOPs per token, and the knob value for a target N.

    With ``model.sizes`` the catalog is exactly those values ("used as given"); without, any legal
    value of the knob, found by the recommender's search on the meta device (integers unless the
    constructor's default is a float). Each size is described once, so placing many waves is cheap.
    """

    def __init__(
        self,
        model_cls: type,
        model: dict,
        convention: str,
        example_inputs: Any,
        tokens_per_sample: int,
    ) -> None:
        self.model_cls, self.size_param, self.kwargs = model_cls, model["size_param"], model.get("kwargs") or {}
        self.convention, self.example_inputs, self.tokens_per_sample = convention, example_inputs, tokens_per_sample
        given = model.get("sizes")
        self.given: list[int | float] | None = None if given is None else [as_size(s) for s in given]
        self.seeds = self.given or default_probe_sizes(model_cls, self.size_param)
        self.counter = ParamCounter(model_cls, self.size_param, self.kwargs)
        self.notes: list[str] = []
        self._info: dict[int | float, SizeInfo] = {}

    def info(self, size: float) -> SizeInfo:
        size = as_size(size)
        if size not in self._info:
            described, notes = describe_sizes(
                self.model_cls, self.size_param, [size], self.kwargs, self.convention,
                self.example_inputs, self.tokens_per_sample,
            )
            self._info.update(described)
            self.notes += notes
        return self._info[size]

    def candidates(self) -> dict[int | float, int]:
        """{size: N} of the given sizes (empty when the planner searches the knob)."""
        return {s: self.info(s).params for s in self.given or []}

    def size_for(self, target: float) -> int | float:
        """The legal knob value whose N is closest to ``target`` in log (given sizes: the nearest of them)."""
        if self.given is not None:
            return min(self.given, key=lambda s: abs(math.log(self.info(s).params / target)))
        size, _ = closest_size(self.model_cls, self.size_param, self.kwargs, target, self.seeds, self.counter)
        return as_size(size)


def reference_params(recipe: Recipe, catalog: SizeCatalog) -> float:
    """N_ref of the lr rule: the N of ``sweep.lr_reference_size`` when set, else ``lr_reference_params``."""
    if recipe.lr_reference_size is None:
        return recipe.lr_reference_params
    size = as_size(recipe.lr_reference_size)
    if catalog.given is not None and size not in catalog.given:
        raise ValueError(f"sweep.lr_reference_size={size} is not one of model.sizes {sorted(catalog.given)}")
    return float(catalog.info(size).params)


def plan_row(
    recipe: Recipe,
    size_param: str,
    budget: float,
    size: float,
    info: SizeInfo,
    tokens_per_sample: int,
    lr: float,
    *,
    fixed_batch: int | None = None,
    role: str = "sweep",
    wave: int = 0,
    seed: int | None = None,
    suffix: str = "",
) -> tuple[dict, list[str]]:
    """One run that spends ``budget`` on ``size``: tokens rounded to whole batches, achieved FLOPs, warmup."""
    size = as_size(size)
    rid = run_id(budget, size_param, size, suffix)
    tokens_wanted = budget / info.flops_per_token
    batch, steps, rule = recipe.batch_plan(info.params, budget, tokens_wanted, tokens_per_sample, fixed_batch)
    tokens = steps * batch * tokens_per_sample
    achieved = tokens * info.flops_per_token
    warnings = []
    if "floored" in rule:
        warnings.append(
            f"{rid}: the batch law asks for {recipe.batch.tokens_at(info.params, budget):.3g} tokens per "
            f"step, less than one sample of {tokens_per_sample}; it trains with {rule}. Raise sweep.batch.tokens "
            "or set sweep.batch_size if such tiny batches are not what you want"
        )
    if abs(achieved / budget - 1) > 0.01:
        warnings.append(
            f"{rid}: achieved FLOPs {achieved:.4g} are "
            f"{100 * (achieved / budget - 1):+.1f}% off the budget {budget:.4g} (a batch of "
            f"{batch * tokens_per_sample} tokens is too coarse for {tokens_wanted:.4g} tokens); "
            f"lower the batch size or raise the budget"
        )
    row = {
        "run_id": rid,
        "budget": budget,
        "size_param": size_param,
        "size": size,
        "params": info.params,
        "params_total": info.params_total,
        "flops_per_token": info.flops_per_token,
        "flops_convention": recipe.flops_per_token,
        "tokens_per_sample": tokens_per_sample,
        "batch_size": batch,
        "steps": steps,
        "tokens": tokens,
        "lr": lr,
        "warmup_steps": recipe.warmup_steps(info.params, batch * tokens_per_sample, steps),
        "planned_flops": budget,
        "achieved_flops": achieved,
        "seed": recipe.seed if seed is None else seed,
        "role": role,
        "wave": wave,
    }
    return row, warnings


def as_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def read_runs_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"run_id": str, "size_param": str})


def run_row(table: pd.DataFrame, run_id_: str) -> dict:
    """One run as a plain dict with ints kept as ints (``df.loc[id]`` would upcast them to floats)."""
    rows = table[table["run_id"] == run_id_].to_dict("records")
    if not rows:
        raise KeyError(f"run {run_id_!r} is not in the runs table")
    row = rows[0]
    for key in ("params", "params_total", "tokens_per_sample", "batch_size", "steps", "tokens", "warmup_steps",
                "seed", "wave"):
        row[key] = int(row[key])
    row["size"] = as_size(row["size"])
    return row


def run_identity(row: dict) -> dict:
    """What makes a run *this* run: every planned column except bookkeeping (when/why it was planned).

    The workflow's rerun trigger (the train rule's params) uses it, so re-placing a run in another
    wave never retrains it, while a changed lr, seed, batch or budget does.
    """
    return {k: v for k, v in row.items() if k not in BOOKKEEPING}


def runtime_minutes(achieved_flops: float, flops_per_second: float, minimum: float) -> int:
    """Scheduler time request for one run: a 3x margin over the throughput estimate, at least ``minimum``."""
    return max(int(minimum), math.ceil(3 * achieved_flops / flops_per_second / 60))
