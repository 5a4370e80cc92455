"""Where the sweep's runs go: budget by budget, each window placed from what the budgets below found.

A window placed from a rule of thumb (``sweep.tokens_per_param``) misses the optimum of a model the
tool has never seen, and an unbracketed budget is one the fit has to refuse. So, with
``sweep.placement: adaptive``, budgets are placed in *waves*, in ascending order:

1. the first budget's window is centred on the rule of thumb;
2. a budget whose lowest loss sits at an edge of its window, or whose profile has no interior
   minimum, gets ``sizes_per_extension`` more sizes on the open side (up to ``max_extensions``
   times) before anything else is placed;
3. every later budget's window is centred on the optimum predicted from the settled budgets below
   it (a power law through their optima once there are two).

Each wave is a pure function of the config and the finished runs, so the workflow can run it as a
Snakemake checkpoint (one per wave) and :func:`flops_fit.find_optimal` as a loop; a finished run is
never planned twice (run ids depend on budget and size only). ``placement: fixed`` plans every
window at once, as version 1 did.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flops_fit import recipe
from flops_fit.design import Decision
from flops_fit.recipe import Recipe
from flops_fit.planning import SizeCatalog, as_size, plan_row

#: the next rows to train and the notes (warnings) about them
Wave = tuple[list[dict], list[str]]
#: ``sweep.precision``: given the planned table (every run finished) and the budgets where more sizes
#: can be placed, what to add next (:func:`flops_fit.design.decide`, fitted by the pipeline)
Chooser = Callable[[pd.DataFrame, list[float]], "Decision"]


#: a sweep places at most this many waves (a guard: a wave adds runs, or it and every later one add none)
MAX_WAVES = 200


@dataclass(frozen=True)
class Profile:
    """What the finished runs of one budget say about its optimum."""

    budget: float
    bracketed: bool
    #: where to add sizes when not bracketed: "smaller", "larger" or "both"
    open_side: str | None
    #: the interior optimum of a parabola in ln N (None when not bracketed)
    n_opt: float | None
    #: N of the lowest observed loss
    best_params: float | None
    reason: str


def read_profile(budget: float, rows: pd.DataFrame, losses: dict[str, float]) -> Profile:
    """Judge one budget from its finished runs (diverged runs count as missing)."""
    from flops_fit.fitting.isoflop import fit_profile

    N = rows["params"].to_numpy(float)
    L = np.array([losses.get(r, math.nan) for r in rows["run_id"]], float)
    ok = np.isfinite(L)
    if ok.sum() == 0:
        return Profile(budget, False, None, None, None, "no run of this budget finished with a finite loss")
    N, L = N[ok], L[ok]
    best = float(N[np.argmin(L)])
    if best == N.min() or best == N.max():
        side = "smaller" if best == N.min() else "larger"
        return Profile(budget, False, side, None, best, f"lowest loss at the {side.replace('er', 'est')} size")
    if np.unique(N).size < 4:
        return Profile(budget, False, "both", None, best, "fewer than 4 finished sizes")
    fit = fit_profile(np.log(N), L, np.ones((1, N.size)), degree=2)
    if not fit.interior[0]:
        return Profile(budget, False, "both", None, best, str(fit.reason[0]))
    return Profile(budget, True, None, float(np.exp(fit.lnN[0])), best, "bracketed")


def predicted_center(budget: float, settled: list[Profile], tokens_per_param: float,
                     rule_of_thumb: Callable[[float], float] | None = None) -> float:
    """Expected N* at ``budget``: a power law through the optima below, else C^0.5 from the nearest,
    else the rule of thumb (``rule_of_thumb(budget)`` when given: the catalog's own FLOPs, else 6N)."""
    optima = [(p.budget, p.n_opt) for p in settled if p.n_opt is not None]
    if len(optima) >= 2:
        lnC, lnN = np.log([c for c, _ in optima]), np.log([n for _, n in optima])
        slope, intercept = np.polyfit(lnC, lnN, 1)
        return float(math.exp(intercept + slope * math.log(budget)))
    anchor = optima[-1] if optima else next(
        ((p.budget, p.best_params) for p in reversed(settled) if p.best_params), None
    )
    if anchor is not None:
        return anchor[1] * math.sqrt(budget / anchor[0])
    if rule_of_thumb is not None:
        return rule_of_thumb(budget)
    return recipe.expected_optimal_params(budget, tokens_per_param)


class Placer:
    """Plans the rows of one wave; see the module docstring for the policy."""

    def __init__(
        self,
        recipe: Recipe,
        budgets: list[float],
        catalog: SizeCatalog,
        lr_of: Callable[[int], float],
        fixed_batch: int | None = None,
        chooser: Chooser | None = None,
    ) -> None:
        self.recipe, self.catalog = recipe, catalog
        self.lr_of, self.fixed_batch = lr_of, fixed_batch
        self.budgets = sorted(float(b) for b in budgets)
        self.chooser = chooser

    def active_budgets(self, sweep_rows: pd.DataFrame) -> list[float]:
        """The budgets the ladder walks: all of ``budgets``; with ``sweep.precision``, its first
        ``start_budgets`` and every budget a chosen wave placed."""
        if self.recipe.precision is None:
            return self.budgets
        placed = {float(b) for b in sweep_rows["budget"]} if len(sweep_rows) else set()
        start = self.budgets[: self.recipe.precision.start_budgets]
        return sorted(set(start) | {b for b in placed if not any(math.isclose(b, s, rel_tol=1e-9) for s in start)})

    def first_center(self, budget: float) -> float:
        """Where a budget's window is centred when nothing is known yet: ``sweep.tokens_per_param`` in
        the sizes' own FLOPs per token (:meth:`SizeCatalog.expected_optimal_params`)."""
        return self.catalog.expected_optimal_params(budget, self.recipe.tokens_per_param)

    # -- rows -----------------------------------------------------------------------------------------
    def _rows(self, budget: float, sizes: list, wave: int, role: str = "sweep",
              seed: int | None = None, suffix: str = "") -> Wave:
        rows, notes = [], []
        for size in sizes:
            info = self.catalog.info(size)
            row, more = plan_row(
                self.recipe, self.catalog.size_param, budget, size, info, self.catalog.tokens_per_sample, self.lr_of(info.params),
                fixed_batch=self.fixed_batch, role=role, wave=wave, seed=seed, suffix=suffix,
            )
            rows.append(row)
            notes += more
        return rows, notes

    def window(self, budget: float, center: float) -> tuple[list, list[str]]:
        """The sizes of a budget's first window: explicit, chosen from model.sizes, or searched."""
        explicit = self.recipe.sizes_at(budget)
        count = self.recipe.sizes_per_budget
        if explicit is not None:
            sizes = [as_size(s) for s in explicit]
            if self.catalog.given is not None:
                missing = [s for s in sizes if s not in self.catalog.given]
                if missing:
                    raise ValueError(
                        f"sweep.budget_sizes: size {missing[0]} for budget {budget:.3g} is not in model.sizes"
                    )
            return sizes, []
        if self.catalog.given is not None:
            return recipe.select_sizes(budget, self.catalog.candidates(), count, center)
        targets = recipe.target_params(center, count, self.recipe.window_span)
        sizes = _unique(self.catalog.size_for(self.recipe.snap_params(t)) for t in targets)
        notes = []
        if len(sizes) < count:
            notes.append(
                f"budget {budget:.3g}: the knob {self.catalog.size_param} has only {len(sizes)} distinct legal "
                f"values for N around {center:.3g}; training those (raise sweep.window_span for a wider window)"
            )
        return sizes, notes

    def extension(self, budget: float, rows: pd.DataFrame, side: str) -> list:
        """New sizes beyond the open side(s) of a budget's window (none when the knob allows none)."""
        have = {as_size(s) for s in rows["size"]}
        count = self.recipe.sizes_per_extension
        sides = ["smaller", "larger"] if side == "both" else [side]
        if side == "both":
            count = max(1, count // 2)
        new: list = []
        for s in sides:
            if self.catalog.given is not None:
                params = self.catalog.candidates()
                edge = (max if s == "larger" else min)(rows["params"])
                beyond = sorted(
                    (c for c in params if c not in have and ((params[c] > edge) if s == "larger" else (params[c] < edge))),
                    key=lambda c: abs(math.log(params[c] / edge)),
                )
                new += beyond[:count]
            else:
                targets = recipe.extension_params(rows["params"].tolist(), s, count)
                new += [size for size in _unique(self.catalog.size_for(self.recipe.snap_params(t)) for t in targets)
                        if size not in have]
        return _unique(new)

    def densify(self, budget: float, rows: pd.DataFrame, center: float) -> list:
        """``sizes_per_wave`` new sizes between a budget's sizes, nearest its optimum (``center``)."""
        have = {as_size(s) for s in rows["size"]}
        count = self.recipe.precision.sizes_per_wave if self.recipe.precision else self.recipe.sizes_per_extension
        targets = recipe.densify_params(rows["params"].tolist(), center, 2 * count)
        if self.catalog.given is not None:
            params = self.catalog.candidates()
            lo, hi = min(rows["params"]), max(rows["params"])
            inside = sorted((c for c in params if c not in have and lo < params[c] < hi),
                            key=lambda c: abs(math.log(params[c] / center)))
            return inside[:count]
        sizes = [size for size in _unique(self.catalog.size_for(self.recipe.snap_params(t)) for t in targets)
                 if size not in have]
        return sizes[:count]

    def chosen_wave(self, table: pd.DataFrame, sweep_rows: pd.DataFrame, settled: list[Profile], wave: int) -> Wave:
        """``sweep.precision``: the wave the chooser picks once every placed budget is settled (the
        decision itself, with its reasons, is the chooser's record)."""
        centers = {p.budget: p.n_opt or p.best_params for p in settled}
        densifiable = [b for b, c in centers.items() if c and self.densify(b, self._rows_of(sweep_rows, b), c)]
        decision = self.chooser(table, densifiable)
        cand = decision.candidate
        if decision.status != "add" or cand is None:
            return [], []
        if cand.kind == "budget":
            sizes, more = self.window(cand.C, predicted_center(cand.C, settled, self.recipe.tokens_per_param, self.first_center))
        else:
            sizes, more = self.densify(cand.C, self._rows_of(sweep_rows, cand.C), centers[cand.C]), []
        new, more_rows = self._rows(cand.C, sizes, wave)
        return new, more + more_rows

    @staticmethod
    def _rows_of(sweep_rows: pd.DataFrame, budget: float) -> pd.DataFrame:
        return sweep_rows[np.isclose(sweep_rows["budget"], budget, rtol=1e-9)] if len(sweep_rows) else sweep_rows

    # -- the wave -------------------------------------------------------------------------------------
    def next_wave(self, table: pd.DataFrame, losses: dict[str, float], wave: int) -> Wave:
        """The runs to add in ``wave`` given the planned ``table`` and the finished runs' ``losses``."""
        sweep_rows = table[table["role"] == "sweep"] if len(table) else table
        if self.recipe.placement == "fixed":
            return self._fixed(wave) if not len(sweep_rows) else ([], [])
        settled: list[Profile] = []
        pending: Wave = ([], [])  # seed replicates of the smallest budget, added with the next wave
        notes: list[str] = []
        for budget in self.active_budgets(sweep_rows):
            rows = self._rows_of(sweep_rows, budget)
            if not len(rows):
                center = predicted_center(budget, settled, self.recipe.tokens_per_param, self.first_center)
                sizes, more = self.window(budget, center)
                new, more_rows = self._rows(budget, sizes, wave)
                return pending[0] + new, pending[1] + notes + more + more_rows
            profile = read_profile(budget, rows, losses)
            if not profile.bracketed and self.recipe.sizes_at(budget) is None:
                extensions = rows["wave"].nunique() - 1
                if extensions < self.recipe.max_extensions:
                    sizes = self.extension(budget, rows, profile.open_side or "both")
                    if sizes:
                        new, more = self._rows(budget, sizes, wave)
                        return pending[0] + new, pending[1] + [
                            f"budget {budget:.3g} not bracketed ({profile.reason}): adding "
                            f"{self.catalog.size_param} = {', '.join(map(str, sizes))} (extension {extensions + 1})"
                        ] + more
                    notes.append(f"budget {budget:.3g}: not bracketed ({profile.reason}) and no further legal size on that side")
                else:
                    notes.append(
                        f"budget {budget:.3g}: still not bracketed after {extensions} extension(s) ({profile.reason}); "
                        "raise sweep.max_extensions or sweep.window_span"
                    )
            settled.append(profile)
            if budget == self.budgets[0] and self.recipe.seed_replicates and not (table["role"] == "replicate").any():
                pending = self._replicates(budget, rows, wave)
        if self.recipe.precision is not None and self.chooser is not None and not pending[0]:
            rows, more = self.chosen_wave(table, sweep_rows, settled, wave)
            return rows, notes + more
        return pending[0], pending[1] + notes

    def _fixed(self, wave: int) -> Wave:
        rows, notes = [], []
        for budget in self.budgets:
            center = self.first_center(budget)
            sizes, more = self.window(budget, center)
            new, more_rows = self._rows(budget, sizes, wave)
            rows += new
            notes += more + more_rows
        if self.recipe.seed_replicates:
            first = pd.DataFrame([r for r in rows if r["budget"] == self.budgets[0]])
            replicates, more = self._replicates(self.budgets[0], first, wave)
            rows, notes = rows + replicates, notes + more
        return rows, notes

    def _replicates(self, budget: float, rows: pd.DataFrame, wave: int) -> Wave:
        """Extra seeds of every size of ``budget``'s window: the run-to-run noise of this recipe."""
        out: list[dict] = []
        notes: list[str] = []
        base = self.recipe.seed
        for k in range(1, self.recipe.seed_replicates + 1):
            new, more = self._rows(budget, [as_size(s) for s in rows["size"]], wave, role="replicate",
                                   seed=base + k, suffix=f"_seed{base + k}")
            out += new
            notes += more
        return out, notes


def unbracketed(budgets: list[float], table: pd.DataFrame, losses: dict[str, float]) -> list[str]:
    """One line per budget whose finished runs do not bracket its optimum (the fit will refuse it)."""
    sweep_rows = table[table["role"] == "sweep"]
    notes = []
    for budget in sorted(float(b) for b in budgets):
        rows = sweep_rows[np.isclose(sweep_rows["budget"], budget, rtol=1e-9)]
        if len(rows):
            profile = read_profile(budget, rows, losses)
            if not profile.bracketed:
                notes.append(f"budget {budget:.3g} is not bracketed after placement: {profile.reason}")
    return notes


def _unique(values) -> list:
    """Values in first-seen order without repeats (several targets can map to one knob value)."""
    out: list = []
    for v in values:
        if v not in out:
            out.append(v)
    return out
