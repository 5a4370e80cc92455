"""Sweep mechanics: turn budgets and sizes into exact runs (the runs table).

For each budget the recipe picks sizes; here each size is instantiated on the ``meta`` device (no
memory, no data) to count its parameters and FLOPs per token, the token count D = C / FLOPs-per-token
is rounded to whole batches, and the *achieved* FLOPs are recorded next to the planned ones.
Run ids depend only on (budget, size), so growing the config adds rows and never renames a run.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flops_fit.recipe import Recipe, expected_optimal_params
from flops_fit.flops import flops_per_token, matmul_params, total_params
from flops_fit.io import as_written
from flops_fit.knob import ParamCounter, as_size, closest_size
from flops_fit.model_contract import default_probe_sizes, instantiate

#: Column order of results/plan/runs.tsv (documented in docs/architecture.md).
RUN_COLUMNS = [
    "run_id", "budget", "size_param", "size", "params", "params_total", "flops_per_token",
    "flops_per_token_6n", "flops_convention", "tokens_per_sample", "batch_size", "steps", "tokens", "epochs", "lr", "warmup_steps",
    "planned_flops", "achieved_flops", "seed", "role", "wave", "branch_of", "branch_step",
]
#: a branched run (``sweep.reuse: branches``): the stable run it continues (empty: a standalone run)
#: and the step its cooldown starts from (0: standalone); tables written before them read as standalone
BRANCH_COLUMNS = ("branch_of", "branch_step")
#: what a stable (constant-lr) run is: runs that agree on these can share its prefix
STABLE_KEYS = ("size_param", "size", "params", "flops_per_token", "tokens_per_sample", "batch_size", "lr",
               "warmup_steps", "seed")
#: what a row is for: an IsoFLOP point, an extra seed of one (noise), an lr-calibration run, or the
#: recommended size or a neighbour of it, trained to check the prediction (flops_fit.verify; never fitted)
ROLES = ("sweep", "replicate", "calibration", "verify")
#: bookkeeping columns that say when or why a run was planned, not how it trains; ``epochs`` is
#: derived from the data's size (:func:`with_epochs`) and ``flops_per_token_6n`` from ``params``, so
#: tables from before them keep their runs
BOOKKEEPING = ("role", "wave", "epochs", "flops_per_token_6n")
#: 6N is called off when it differs from the measured FLOPs per token by more than this share
SIX_N_TOLERANCE = 0.10
#: fixed-point steps of :meth:`SizeCatalog.expected_optimal_params` (k(N) varies slowly: 3 settle it)
CENTRE_ITERATIONS = 3


@dataclass(frozen=True)
class SizeInfo:
    params: int
    params_total: int
    #: under the sweep's convention: what its budgets are spent in
    flops_per_token: float

    @property
    def flops_per_token_6n(self) -> float:
        """The literature's 6N, recorded beside the convention's count so the two can be compared."""
        return 6.0 * self.params


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

    def expected_optimal_params(self, budget: float, tokens_per_param: float) -> float:
        """The N that spends ``budget`` at ``tokens_per_param`` tokens per parameter in this catalog's
        FLOPs: C = k(N)·r·N², k(N) the FLOPs per parameter-token of the size nearest N (6 under 6N).

        Measured FLOPs per token exceed 6N most at small sizes (the shipped GPT: 1.41x at d_model 18),
        so centring on sqrt(C / 6r) would put a first window on models too big for its budget.
        """
        n = expected_optimal_params(budget, tokens_per_param)
        for _ in range(CENTRE_ITERATIONS):
            info = self.info(self.size_for(n))
            n = expected_optimal_params(budget, tokens_per_param, info.flops_per_token / info.params)
        return n

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
    batch, steps, rule = recipe.batch_plan(info.params, budget, tokens_wanted, tokens_per_sample, fixed_batch,
                                           info.flops_per_token)
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
        "flops_per_token_6n": info.flops_per_token_6n,
        "flops_convention": recipe.flops_per_token,
        "tokens_per_sample": tokens_per_sample,
        "batch_size": batch,
        "steps": steps,
        "tokens": tokens,
        "lr": lr,
        "warmup_steps": recipe.warmup_steps(info.params, batch * tokens_per_sample, steps, info.flops_per_token),
        "planned_flops": budget,
        "achieved_flops": achieved,
        "seed": recipe.seed if seed is None else seed,
        "role": role,
        "wave": wave,
        "branch_of": "",
        "branch_step": 0,
    }
    return row, warnings


def as_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def with_epochs(table: pd.DataFrame, samples: int | None) -> pd.DataFrame:
    """``table`` with its ``epochs`` column: samples each run trains on (steps · batch_size) over the
    training data's ``samples`` (:func:`flops_fit.data.dataset_samples`); empty when that is unknown."""
    table = table.copy()
    table["epochs"] = (table["steps"] * table["batch_size"] / samples).astype(float) if samples else float("nan")
    return table


#: how many repeating runs a repeat-data warning names
REPEAT_NAMED = 3


def repetition_warning(table: pd.DataFrame, what: str = "runs") -> list[str]:
    """One line for every run of ``table`` that sees its data more than once (``epochs`` > 1), or none.

    Repetition changes the law (a repeated token is worth less than a fresh one), so the line names
    the worst runs, the most epochs, and the budgets concerned: the largest budgets need more data.
    """
    if "epochs" not in table.columns or not len(table):
        return []
    epochs = pd.to_numeric(table["epochs"], errors="coerce")
    over = table[epochs > 1].assign(_epochs=epochs[epochs > 1]).sort_values("_epochs", ascending=False)
    if not len(over):
        return []
    worst = over.iloc[0]
    samples = round(float(worst["steps"]) * float(worst["batch_size"]) / float(worst["_epochs"]))
    names = ", ".join(over["run_id"].head(REPEAT_NAMED)) + (", …" if len(over) > REPEAT_NAMED else "")
    budgets = ", ".join(f"{b:.3g}" for b in sorted(set(over["budget"].astype(float))))
    return [
        f"{len(over)} of {len(table)} {what} repeat data: up to {float(worst['_epochs']):.3g} epochs of the "
        f"{samples:,} training samples ({names}), at C = {budgets}; a repeated sample is worth less than a "
        "fresh one, so these runs' losses are higher than fresh data would give: the largest budgets "
        "need more data (or lower budgets)"
    ]


def six_n_warning(table: pd.DataFrame) -> list[str]:
    """One line when 6N is more than :data:`SIX_N_TOLERANCE` off the FLOPs per token the runs are
    planned in (for any planned size), with the range of the ratio, or none.

    Budgets, N* and the exponents are in the convention's FLOPs; a reader comparing them with a
    published 6N law needs to know how far apart the two counts are, and at which sizes (issue 25:
    the shipped GPT is 1.41x 6N at d_model 18, a small ViT on digits 17x).
    """
    if "flops_per_token_6n" not in table.columns or not len(table):
        return []
    sizes = table.drop_duplicates("size").sort_values("params")
    ratio = sizes["flops_per_token"].astype(float) / sizes["flops_per_token_6n"].astype(float)
    if not ((ratio - 1).abs() > SIX_N_TOLERANCE).any():
        return []
    param = sizes["size_param"].iloc[0]
    lo, hi = ratio.idxmin(), ratio.idxmax()
    return [
        f"flops_per_token: the runs' FLOPs per token ({sizes['flops_convention'].iloc[0]}) are "
        f"{ratio[lo]:.3g}x to {ratio[hi]:.3g}x 6N ({param}={as_size(sizes.loc[lo, 'size'])} and "
        f"{param}={as_size(sizes.loc[hi, 'size'])}), more than {SIX_N_TOLERANCE:.0%} off: budgets, N* and the "
        "exponents are in these FLOPs, not in 6N units. Compare with 6N laws from the literature through the "
        "runs table's flops_per_token_6n column, or set sweep.flops_per_token: 6N"
    ]


def read_runs_table(path: str | Path) -> pd.DataFrame:
    """A runs table as written; one from before ``sweep.reuse`` reads as all standalone runs."""
    table = pd.read_csv(path, sep="\t", dtype={"run_id": str, "size_param": str, "branch_of": str})
    if "branch_of" not in table.columns:
        table["branch_of"] = ""
    if "branch_step" not in table.columns:
        table["branch_step"] = 0
    table["branch_of"] = table["branch_of"].fillna("")
    table["branch_step"] = table["branch_step"].fillna(0).astype(int)
    return table


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
    branch_of = row.get("branch_of")
    row["branch_of"] = "" if not isinstance(branch_of, str) else branch_of
    row["branch_step"] = int(row.get("branch_step") or 0)
    return row


def run_identity(row: dict) -> dict:
    """What makes a run *this* run: every planned column except bookkeeping (when/why it was planned).

    The workflow's rerun trigger (the train rule's params) uses it, so re-placing a run in another
    wave never retrains it, while a changed lr, seed, batch or budget does. A standalone run's
    identity has no branch columns, so tables from before ``sweep.reuse`` keep their runs.
    """
    identity = {k: v for k, v in row.items() if k not in BOOKKEEPING}
    if not identity.get("branch_of"):
        for key in BRANCH_COLUMNS:
            identity.pop(key, None)
    return identity


# ------------------------------------------------------------------------------------------- branches
def stable_identity(row: dict) -> dict:
    """What a stable run is (:data:`STABLE_KEYS`): its branch checkpoints are fingerprinted with it, so
    a cooldown only ever continues a prefix trained with its own size, batch, lr, warmup and seed."""
    kinds = {"size_param": str, "size": as_size, "flops_per_token": as_written, "lr": as_written}
    return {key: kinds.get(key, int)(row[key]) for key in STABLE_KEYS}


def stable_id(row: dict) -> str:
    """Readable, path-safe id of a stable run, e.g. ``d_model48_seed0_3f2a9c1e`` (hash of its identity)."""
    identity = stable_identity(row)
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{row['size_param']}{as_size(row['size'])}_seed{int(row['seed'])}_{digest}"


def assign_branches(table: pd.DataFrame, new_ids: set[str], recipe: Recipe, budgets: list[float]) -> pd.DataFrame:
    """Mark the runs ``new_ids`` of ``table`` as cooldowns of a shared stable run where one can serve them.

    A sweep or replicate run branches when its branch point (:func:`~flops_fit.training.schedule.decay_start`)
    lies past its warmup and its stable identity is shared: another run of the table has it, or (adaptive
    placement) a budget above the run's is still to be placed and may reuse the size. A branched run
    trains exactly the FLOPs of one WSD run, so branching a run that ends up alone costs nothing but a
    saved checkpoint. Runs already in the table keep their columns (a finished run is never re-planned);
    calibration and verification runs stay standalone. Without ``sweep.reuse: branches``, nothing changes.
    """
    from flops_fit.training.schedule import decay_start

    table = table.copy()
    if not recipe.branches or not len(table):
        return table
    shareable = table["role"].isin(["sweep", "replicate"])
    keys = {i: json.dumps(stable_identity(row), sort_keys=True, default=str)
            for i, row in zip(table.index, table.to_dict("records")) if shareable[i]}
    counts = pd.Series(list(keys.values())).value_counts()
    placed = {float(b) for b in table["budget"]}
    for i, row in zip(table.index, table.to_dict("records")):
        if row["run_id"] not in new_ids or i not in keys:
            continue
        step = decay_start(int(row["steps"]), int(row["warmup_steps"]), recipe.decay_fraction)
        later = recipe.placement == "adaptive" and any(
            float(b) > float(row["budget"]) * (1 + 1e-9) and not any(math.isclose(float(b), p, rel_tol=1e-9) for p in placed)
            for b in budgets
        )
        if step > int(row["warmup_steps"]) and (counts[keys[i]] >= 2 or later):
            table.loc[i, "branch_of"] = stable_id(row)
            table.loc[i, "branch_step"] = step
    return table


@dataclass(frozen=True)
class Segment:
    """One stable segment: the stable run ``stable_id`` trained from ``start`` to ``end`` (steps), at constant lr."""

    stable_id: str
    start: int
    end: int
    #: the stable run's identity (:func:`stable_identity`) and a row to build its model from
    identity: dict
    #: tokens per step and FLOPs per token, for its cost
    step_tokens: int
    flops_per_token: float

    @property
    def flops(self) -> float:
        return float((self.end - self.start) * self.step_tokens * self.flops_per_token)


def stable_segments(table: pd.DataFrame) -> list[Segment]:
    """Every stable segment the branched runs of ``table`` need, in training order per stable run:
    one per distinct branch step, each from the previous branch point (or step 0)."""
    if "branch_of" not in table.columns:
        return []
    branched = table[table["branch_of"].fillna("") != ""]
    segments: list[Segment] = []
    for sid, rows in branched.groupby("branch_of", sort=True):
        row = rows.iloc[0].to_dict()
        start = 0
        for end in sorted({int(s) for s in rows["branch_step"]}):
            segments.append(Segment(str(sid), start, end, stable_identity(row),
                                    int(row["batch_size"]) * int(row["tokens_per_sample"]), float(row["flops_per_token"])))
            start = end
    return segments


def compute_cost(table: pd.DataFrame) -> tuple[float, float]:
    """(trained, separate) FLOPs of the sweep/replicate runs of ``table``: what the sweep trains, each
    stable prefix counted once (stable segments + cooldowns + standalone runs), and what the same runs
    would cost trained separately (each run's own achieved FLOPs: its whole token history)."""
    runs = table[table["role"].isin(["sweep", "replicate"])] if "role" in table.columns else table
    separate = float(runs["achieved_flops"].sum())
    branched = runs["branch_of"].fillna("") != "" if "branch_of" in runs.columns else pd.Series(False, index=runs.index)
    standalone = float(runs.loc[~branched, "achieved_flops"].sum())
    b = runs[branched]
    cooldowns = float(((b["steps"] - b["branch_step"]) * b["batch_size"] * b["tokens_per_sample"] * b["flops_per_token"]).sum())
    stable = sum(s.flops for s in stable_segments(runs))
    return stable + cooldowns + standalone, separate


def runtime_minutes(achieved_flops: float, flops_per_second: float, minimum: float) -> int:
    """Scheduler time request for one run: a 3x margin over the throughput estimate, at least ``minimum``."""
    return max(int(minimum), math.ceil(3 * achieved_flops / flops_per_second / 60))
