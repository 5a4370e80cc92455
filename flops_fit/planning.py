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

from flops_fit import recipe
from flops_fit.flops import flops_per_token, matmul_params, total_params
from flops_fit.model_contract import instantiate

#: Column order of results/plan/runs.tsv (documented in docs/architecture.md).
RUN_COLUMNS = [
    "run_id", "budget", "size_param", "size", "params", "params_total", "flops_per_token",
    "flops_convention", "tokens_per_sample", "batch_size", "steps", "tokens", "lr", "warmup_steps",
    "planned_flops", "achieved_flops", "seed",
]


@dataclass(frozen=True)
class SizeInfo:
    params: int
    params_total: int
    flops_per_token: float


def as_size(value: float) -> int | float:
    """48.0 → 48: YAML and pandas turn integers into floats; model constructors want ints."""
    return int(value) if float(value).is_integer() else float(value)


def run_id(budget: float, size_param: str, size: float) -> str:
    """Stable, readable, path-safe id, e.g. ``C3e11_d_model48`` or ``C6.5e11_width0.5``."""
    mantissa, exponent = f"{budget:.4g}".split("e") if "e" in f"{budget:.4g}" else (f"{budget:.4g}", "0")
    return f"C{mantissa}e{int(exponent)}_{size_param}{as_size(size)}"


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


def plan_sweep(
    config: dict, sizes: dict[float, SizeInfo], tokens_per_sample: int, fixed_batch: int | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The runs table for every budget in ``config`` (schema-validated, defaults filled).

    ``fixed_batch`` is the batch size of a user-supplied DataLoader, which the plan must respect.
    """
    sweep = config["sweep"]
    size_param = config["model"]["size_param"]
    params_by_size = {s: i.params for s, i in sizes.items()}
    ref_size = as_size(sweep["lr_reference_size"]) if sweep["lr_reference_size"] is not None else min(sizes)
    if ref_size not in sizes:
        raise ValueError(f"sweep.lr_reference_size={ref_size} is not one of model.sizes {sorted(sizes)}")
    steps_target, batch_size = recipe.batch_rule(sweep, fixed_batch)
    rows, warnings = [], []
    for budget in sorted(float(b) for b in config["budgets"]):
        chosen = recipe.budget_sizes(sweep["budget_sizes"], budget)
        if chosen is None:
            chosen, notes = recipe.select_sizes(
                budget, params_by_size, sweep["sizes_per_budget"], sweep["tokens_per_param"]
            )
            warnings += notes
        for size in chosen:
            size = as_size(size)
            if size not in sizes:
                raise ValueError(f"sweep.budget_sizes: size {size} for budget {budget:.3g} is not in model.sizes")
            info = sizes[size]
            tokens_wanted = budget / info.flops_per_token
            batch, steps = recipe.batch_and_steps(tokens_wanted, tokens_per_sample, steps_target, batch_size)
            tokens = steps * batch * tokens_per_sample
            achieved = tokens * info.flops_per_token
            if abs(achieved / budget - 1) > 0.01:
                warnings.append(
                    f"{run_id(budget, size_param, size)}: achieved FLOPs {achieved:.4g} are "
                    f"{100 * (achieved / budget - 1):+.1f}% off the budget {budget:.4g} (a batch of "
                    f"{batch * tokens_per_sample} tokens is too coarse for {tokens_wanted:.4g} tokens); "
                    f"lower the batch size or raise the budget"
                )
            rows.append({
                "run_id": run_id(budget, size_param, size),
                "budget": budget,
                "size_param": size_param,
                "size": size,
                "params": info.params,
                "params_total": info.params_total,
                "flops_per_token": info.flops_per_token,
                "flops_convention": sweep["flops_per_token"],
                "tokens_per_sample": tokens_per_sample,
                "batch_size": batch,
                "steps": steps,
                "tokens": tokens,
                "lr": recipe.learning_rate(info.params, sizes[ref_size].params, sweep["lr"], sweep["lr_exponent"]),
                "warmup_steps": recipe.warmup_steps(
                    info.params, batch * tokens_per_sample, steps,
                    sweep["warmup_tokens_per_param"], sweep["max_warmup_fraction"],
                ),
                "planned_flops": budget,
                "achieved_flops": achieved,
                "seed": sweep["seed"],
            })
    return pd.DataFrame(rows, columns=RUN_COLUMNS), warnings


def read_runs_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"run_id": str, "size_param": str})


def run_row(table: pd.DataFrame, run_id_: str) -> dict:
    """One run as a plain dict with ints kept as ints (``df.loc[id]`` would upcast them to floats)."""
    rows = table[table["run_id"] == run_id_].to_dict("records")
    if not rows:
        raise KeyError(f"run {run_id_!r} is not in the runs table")
    row = rows[0]
    for key in ("params", "params_total", "tokens_per_sample", "batch_size", "steps", "tokens", "warmup_steps", "seed"):
        row[key] = int(row[key])
    row["size"] = as_size(row["size"])
    return row


def runtime_minutes(achieved_flops: float, flops_per_second: float, minimum: float) -> int:
    """Scheduler time request for one run: a 3x margin over the throughput estimate, at least ``minimum``."""
    return max(int(minimum), math.ceil(3 * achieved_flops / flops_per_second / 60))
