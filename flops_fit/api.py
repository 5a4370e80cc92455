"""``find_optimal()``: the whole pipeline for notebook users, on Python objects instead of a config file.

It validates everything first (seconds, before any training), then runs the same steps as the
workflow (:mod:`flops_fit.pipeline`: validate → plan → train every run → fit → recommend → plot →
summarize) in this process, writing the same files under ``output_dir``
(:class:`flops_fit.paths.Results`). Runs whose metrics already exist for the same plan are not
retrained, so an interrupted call resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from flops_fit import pipeline, placement, planning, verify as verification
from flops_fit.config import prepare_config
from flops_fit.data import dataset_samples, validate_dataset
from flops_fit.errors import ConfigError
from flops_fit.fitting import ScalingFit, write_fit
from flops_fit.fitting.summary import estimate
from flops_fit.io import write_json, write_tsv
from flops_fit.loss import validate_loss_fn
from flops_fit.model_contract import validate_model_contract
from flops_fit.paths import RUN_PLAN, Results
from flops_fit.progress import SweepProgress, sweep_progress, visible_info
from flops_fit.recommend import lines as recommendation_lines
from flops_fit.recommend import no_recommendation, recommend_for
from flops_fit.validation import validate_config

log = logging.getLogger("flops_fit")


#: the columns of ScalingResult.optima; ``reason`` is empty for an interior minimum
_OPTIMA_COLUMNS = ("C", "N_opt", "D_opt", "loss_opt", "interior", "reason")

class WholeTable(pd.DataFrame):
    """A DataFrame printed with every column: pandas elides middle columns past 80 characters.

    ``optima`` exists to show whether each budget's minimum is interior; a long ``reason`` made
    pandas replace ``interior`` with ``...`` in a script's output. Derived frames are plain ones.
    """

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def __repr__(self) -> str:
        return self.to_string()


@dataclass
class ScalingResult:
    """What :func:`find_optimal` found: fitted laws, per-budget optima, predictions, recommendations, runs."""

    fit: ScalingFit
    runs: pd.DataFrame
    output_dir: Path
    warnings: list[str] = field(default_factory=list)
    #: one row per target budget: the size-knob value to train, its N, tokens, steps (flops_fit.recommend)
    recommendations: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: ``verify=True``: one row per verification run (the recommended size and its neighbours): observed
    #: loss against the prediction, and which size was the observed best (flops_fit.verify)
    verification: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def a(self) -> float | None:
        """Exponent of N* ∝ C^a from the IsoFLOP optima (Approach 2)."""
        return self.fit.isoflop.a

    @property
    def b(self) -> float | None:
        """Exponent of D* ∝ C^b from the IsoFLOP optima (Approach 2)."""
        return self.fit.isoflop.b

    @property
    def optima(self) -> pd.DataFrame:
        """One row per budget: C, N_opt, D_opt, loss_opt, interior, and why a budget's minimum is not interior.

        Only these columns: with all of ``fit.isoflop.per_budget``'s fields pandas elides the middle
        ones, ``interior`` among them, and a refused budget would look like any other.
        """
        rows = [dataclasses.asdict(e) for e in self.fit.isoflop.per_budget]
        table = WholeTable(pd.DataFrame(rows, columns=list(_OPTIMA_COLUMNS)))
        table["reason"] = table["reason"].fillna("")
        return table

    @property
    def predictions(self) -> pd.DataFrame:
        """N*, D*, loss at the target budgets (with intervals in the ``ci`` column)."""
        return pd.DataFrame([dataclasses.asdict(p) for p in self.fit.predictions])

    def __repr__(self) -> str:
        lines = [f"ScalingResult({len(self.runs)} runs in {self.output_dir})"]
        if self.a is not None:
            iso = self.fit.isoflop
            lines.append(f"  N* ∝ C^a, D* ∝ C^b (IsoFLOP, Approach 2): {estimate('a', iso.a, iso.ci.get('a'))}, "
                         f"{estimate('b', iso.b, iso.ci.get('b'))}" + ("" if iso.ci.get("a") else " (no interval)"))
        par = self.fit.parametric
        if par.alpha is not None:
            lines.append(
                f"  L(N, D) = {par.E:.3f} + {par.A:.4g}/N^{par.alpha:.3f} + {par.B:.4g}/D^{par.beta:.3f} (Approach 3)"
            )
        if len(self.recommendations):
            lines += [f"  {line}" for line in recommendation_lines(self.recommendations)]
        elif no_recommendation(self.fit):
            lines += [f"  {line}" for line in no_recommendation(self.fit)]
        else:
            for p in self.fit.predictions:
                lines.append(f"  C={p.C:.3g}: N*={p.N:.3g}, D*={p.D:.3g}, loss={p.loss:.4g}")
        lines += [f"  {line}" for line in verification.lines(self.verification)]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def find_optimal(
    model_cls: type,
    model_size_param: str,
    model_kwargs: dict | None = None,
    dataset: Any = None,
    loss_fn: Any = None,
    compute_budgets: Sequence[float] | None = None,
    *,
    sizes: Sequence[float] | None = None,
    eval_dataset: Any = None,
    eval_samples: int = 512,
    inputs_key: str = "input_ids",
    targets_key: str = "labels",
    target_budgets: Sequence[float] = (),
    output_dir: str | Path = "flops_fit_results",
    sweep: dict | None = None,
    training: dict | None = None,
    fit: dict | None = None,
    verify: bool | Sequence[float] = False,
    verify_sizes: int | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> ScalingResult:
    """Run an IsoFLOP sweep of ``model_cls``, sized by ``model_size_param``, and fit scaling laws.

    ``sizes`` are candidate values of the size knob, used as given; without them the planner searches
    the knob for the N each window needs. The sweep calibrates the learning rate at the smallest budget,
    then places the budgets in ascending order, each window centred on the optimum the budgets below it
    predict and extended while its minimum is not bracketed (``sweep`` keys ``placement``,
    ``lr_calibration``, …). The progress total grows as each wave is placed.

    ``sweep``, ``training`` and ``fit`` take the keys of the config sections of the same names
    (config/README.md); everything not given takes the documented default. Returns a
    :class:`ScalingResult`; the files are under ``output_dir`` in the workflow's layout
    (``validated.json``, ``plan/runs.tsv``, ``runs/<run_id>/``, ``fit/fit.json``, ``plots/``,
    ``report/summary.html``). ``inputs_key`` and
    ``targets_key`` say where samples that are mappings keep the inputs and targets (config keys
    ``dataset.inputs_key`` / ``dataset.targets_key``); ``(inputs, targets)`` pairs need neither.

    ``fit={"loss_floor": L}`` gives a known lower bound on the eval loss (the data's entropy rate):
    Approach 3's E is fitted at or above it. It may also be a reference ``{"target": "pkg.mod:fn",
    "kwargs": {...}}`` as in a config file; it is resolved before any training.

    ``progress`` shows runs done of total with an ETA while the sweep trains: a bar on a terminal,
    INFO lines of the ``flops_fit`` logger elsewhere (printed to stderr when logging is not
    configured, otherwise as configured); ``progress=False`` shows nothing.

    ``verify`` trains the recommended size and its neighbours after the fit (True: at the smallest target
    budget; a list: at those target budgets) with the sweep's recipe, compares their losses with the law's
    predictions and says whether the recommended size was the observed best (``ScalingResult.verification``,
    ``verify/verify.tsv``); the runs never enter the fit. ``verify_sizes`` is the number of sizes per budget
    (config key ``verify.sizes``; default 3: N*/2, N*, 2N*; 1: the recommended size alone).

    ``threads`` sets torch's CPU threads of every run (config key ``training.threads``; None: torch's
    default, every core). On a shared or loaded machine give it (1 is usually fastest for small models);
    it is execution, not identity, so changing it retrains no finished run. torch's setting is restored
    when the sweep ends. Before any run trains, the sweep's cost (planned FLOPs, FLOPs/s measured on the
    smallest model, expected wall time) is logged and written to ``plan/cost_estimate.json``.
    """
    model_kwargs = dict(model_kwargs or {})
    _check_inputs(model_cls, model_size_param, model_kwargs, sizes, dataset, eval_dataset, loss_fn, compute_budgets)
    model = {
        "class": f"{model_cls.__module__}:{model_cls.__qualname__}",
        "size_param": model_size_param, "kwargs": model_kwargs,
    }
    if sizes is not None:
        model["sizes"] = list(sizes)
    config = prepare_config({
        "model": model,
        "dataset": {"target": "<find_optimal dataset>", "inputs_key": inputs_key, "targets_key": targets_key},
        "eval_dataset": {"target": None if eval_dataset is None else "<find_optimal eval_dataset>", "samples": eval_samples},
        "loss": {"target": "<find_optimal loss_fn>"},
        "budgets": list(compute_budgets),
        "target_budgets": list(target_budgets),
        "sweep": dict(sweep or {}),
        "training": {**(training or {}), **({} if threads is None else {"threads": threads})},
        "fit": dict(fit or {}),
        "verify": {**({} if isinstance(verify, bool) else {"budgets": list(verify)}),
                   **({} if verify_sizes is None else {"sizes": verify_sizes})},
    })
    out = Results(Path(output_dir))
    # the validate rule's checks on the objects themselves (a bad fit.loss_floor reference fails now,
    # not after the sweep has trained) and the smoke test, before anything is written
    summary = validate_config(config, objects={"model": model_cls, "dataset": dataset,
                                               "eval_dataset": eval_dataset, "loss": loss_fn})
    objects = (model_cls, dataset, eval_dataset, loss_fn)
    ctx = pipeline.plan_context(config, model_cls, dataset, eval_dataset)
    warnings: list[str] = _logged(pipeline.smoke_check(config, ctx, loss_fn))  # before any training
    pipeline.write_validated(config, summary, out.validated)
    torch_threads = torch.get_num_threads()  # runs set training.threads; given back at the end
    with visible_info(log) if progress else nullcontext():  # progress=False: logging as configured
        calibration, notes = pipeline.calibration_plan(config, ctx)
        cost = pipeline.cost_estimate(config, ctx, loss_fn, calibration, config["training"]["threads"], 1)
        write_json(cost.to_dict(), out.cost_estimate)
        log.info("%s", cost.describe())
        tracker = sweep_progress({}, progress, log)

        def train(table: pd.DataFrame, plan: pd.DataFrame | None = None) -> dict[str, float]:
            """Train the runs of ``table`` (new in ``plan``, the cumulative table): with branches, the
            stable segments they branch from first, in order, then every run (as the workflow's rules)."""
            tracker.add(dict(zip(table["run_id"], table["achieved_flops"])))  # each wave adds its runs
            if plan is not None:
                needed = set(table["branch_of"].fillna(""))
                for segment in planning.stable_segments(plan):
                    if segment.stable_id in needed:
                        _train_segment_unless_done(config, segment, objects, out)
            for row in table.to_dict("records"):
                _train_unless_finished(config, planning.run_row(table, row["run_id"]), *objects, out, tracker)
            return pipeline.read_losses(table, out.runs_dir)

        try:
            # 1. the lr calibration at the smallest budget (the same steps as the workflow's rules)
            warnings += _logged(notes)
            write_tsv(calibration, out.calibration_plan)
            losses = train(calibration)
            law = pipeline.calibrate(config, calibration, losses,
                                     pipeline.no_learning_runs(config, calibration, out.runs_dir))
            warnings += _logged(law.get("warnings", []))
            write_json(law, out.calibration_law)
            # 2. the budgets in waves, each placed from the finished runs before it
            table = planning.as_table([])
            waves = []
            for wave in range(placement.MAX_WAVES):
                losses = pipeline.read_losses(table, out.runs_dir)
                table, notes, decision = pipeline.place_wave(config, ctx, law, table, losses, wave, out.runs_dir,
                                                             pipeline.decided_widths(waves))
                write_tsv(table, out.wave(wave))
                waves.append(pipeline.wave_design(table, wave, decision))
                write_json(waves[-1], out.wave_design(wave))
                if decision is not None:
                    log.info("wave %d: %s", wave, decision.message)
                new = table[table["wave"] == wave]
                if wave and not len(new):
                    break  # a wave is a function of the finished runs: nothing new now, nothing new later
                warnings += _logged(notes)
                train(new, table)
            write_json(pipeline.design_record(config, waves), out.design)
        finally:  # also when a run fails: the bar's line ends before the traceback
            tracker.close()
            torch.set_num_threads(torch_threads)
    write_tsv(table, out.runs_table)
    warnings += _logged(planning.repetition_warning(table))  # one line for the whole sweep
    warnings += _logged(planning.six_n_warning(table))
    warnings += _logged(placement.unbracketed(pipeline.sweep_budgets(config, table), table,
                                              pipeline.read_losses(table, out.runs_dir)))
    # 3. fit, recommend, plot
    result, fitted = pipeline.fit_runs(config, table, out.runs_dir, waves)
    if result.design and result.design["outlook"]:
        log.info(result.design["outlook"]["message"])
    write_tsv(fitted, out.fitted_runs)
    write_fit(result, out.fit, out.fit_summary)
    recommendations, notes = recommend_for(result, config, model_cls, dataset, ctx.tokens_per_sample,
                                           dataset_samples(ctx.train_data))
    write_tsv(recommendations, out.recommendations)
    from flops_fit.plotting.suite import plot_all  # matplotlib only when a sweep is plotted

    plot_all(result, fitted, table, out.runs_dir, out.plots_dir)
    # the summarize rule's step: the report's summary page and the runs table with each run's outcome
    pipeline.summarize_step(out.fit, out.recommendations, out.runs_table, out.runs_dir, out.calibration_law,
                            out.summary_page, out.report_runs, pipeline.chance_loss(config))
    checked = pd.DataFrame(columns=verification.COLUMNS)
    if verify is not False:
        checked, more = _verify(config, ctx, law, result, recommendations, objects, out, progress)
        notes += more
    return ScalingResult(fit=result, runs=table, output_dir=out.root, warnings=_unique(warnings + list(result.warnings) + notes),
                         recommendations=recommendations, verification=checked)


def _verify(config: dict, ctx: pipeline.PlanContext, law: dict, fit: ScalingFit, recommendations: pd.DataFrame,
            objects: tuple, out: Results, progress: bool) -> tuple[pd.DataFrame, list[str]]:
    """The workflow's verify_plan, train and verify steps: plan, train (unless finished) and compare."""
    budgets = verification.verify_budgets(config)
    notes = verification.nothing_to_verify(fit, budgets)
    plan = planning.as_table([])
    if not notes:
        plan, notes = verification.plan_verification(ctx.recipe, ctx.catalog, ctx.tokens_per_sample, ctx.fixed_batch,
                                                     pipeline.lr_function(config, ctx, law), recommendations, budgets,
                                                     verification.verify_sizes(config))
        plan = planning.with_epochs(plan, dataset_samples(ctx.train_data))
    write_tsv(plan, out.verify_plan)
    with visible_info(log) if progress else nullcontext():
        tracker = sweep_progress(dict(zip(plan["run_id"], plan["achieved_flops"])), progress, log)
        try:
            for run_id in plan["run_id"]:
                _train_unless_finished(config, planning.run_row(plan, run_id), *objects, out, tracker)
        finally:
            tracker.close()
    table, lines = verification.write_verification(fit, recommendations, plan, out.runs_dir, budgets,
                                                   out.verify_table, out.verify_page)
    for line in lines:
        log.info(line)
    return table, _logged(notes)


def _check_inputs(model_cls, size_param, model_kwargs, sizes, dataset, eval_dataset, loss_fn, budgets) -> None:
    """Every check of the user interfaces (docs/interfaces.md), all of them: one report lists every independent problem."""
    checks = [
        lambda: validate_model_contract(model_cls, size_param, model_kwargs, None if sizes is None else list(sizes)),
        lambda: validate_dataset(dataset, name="dataset"),  # None -> "dataset is required", with examples
        lambda: eval_dataset is None or validate_dataset(eval_dataset, name="eval_dataset"),
        lambda: validate_loss_fn(loss_fn),
        lambda: _check_budgets(budgets),
    ]
    problems: list[Exception] = []
    for check in checks:
        try:
            check()
        except (TypeError, ValueError) as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        numbered = "\n".join(f"{i}. {p}" for i, p in enumerate(problems, 1))
        kind = TypeError if all(isinstance(p, TypeError) for p in problems) else ConfigError
        raise kind(f"find_optimal() has {len(problems)} problems:\n{numbered}")


def _check_budgets(budgets: Sequence[float] | None) -> None:
    if not budgets:
        raise TypeError("compute_budgets is required: training FLOP budgets, e.g. compute_budgets=[1e15, 3e15, 1e16]")


def _logged(notes: list[str]) -> list[str]:
    for note in notes:
        log.warning(note)
    return list(notes)


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _finished(run: dict, out: Results) -> bool:
    """True when ``out`` holds the metrics of this very plan row: never retrain it.

    "This very row" is the workflow's rerun trigger, :func:`flops_fit.planning.run_identity` (every
    planned column but bookkeeping), recorded beside the metrics when the run was trained: a changed
    seed, warmup, lr, batch or budget retrains, an identical call retrains nothing.
    """
    metrics, plan = out.metrics(run["run_id"]), out.run_dir(run["run_id"]) / RUN_PLAN
    if not (metrics.exists() and plan.exists()):
        return False
    return json.loads(plan.read_text()) == json.loads(json.dumps(planning.run_identity(run)))


def _train_unless_finished(config, run, model_cls, dataset, eval_dataset, loss_fn, out: Results,
                           tracker: SweepProgress) -> None:
    """Train ``run`` into ``out.run_dir(run_id)`` unless it holds this plan's result; count it either way.
    Its per-step lines go to the ``flops_fit.training`` logger, below the progress."""
    run_id = run["run_id"]
    if _finished(run, out):
        tracker.kept(run_id)
        return
    tracker.started(run_id)
    objects = (model_cls, dataset, eval_dataset, loss_fn)
    branch = out.branch_dir(run["branch_of"], run["branch_step"]) if run.get("branch_of") else None
    metrics = pipeline.train_run(config, run, objects, out.run_dir(run_id), out.checkpoint_dir(run_id), branch_dir=branch)
    write_json(planning.run_identity(run), out.run_dir(run_id) / RUN_PLAN)
    tracker.finished(run_id, metrics)


def _train_segment_unless_done(config: dict, segment: planning.Segment, objects: tuple, out: Results) -> None:
    """Train one stable segment into its branch checkpoint unless that checkpoint exists (the workflow's
    stable rule). A checkpoint is named by its stable run's identity and step, and a cooldown checks its
    fingerprint, so an existing one is this segment; a later wave extends the last one, never retrains it."""
    target = out.branch_dir(segment.stable_id, segment.end)
    if out.branch_checkpoint(segment.stable_id, segment.end).exists():
        return
    start = out.branch_dir(segment.stable_id, segment.start) if segment.start else None
    log.info("stable run %s: training steps %d to %d", segment.stable_id, segment.start, segment.end)
    pipeline.train_stable_segment(config, segment, objects, start, target,
                                  out.segment_checkpoint_dir(segment.stable_id, segment.end))


__all__ = ["ConfigError", "ScalingResult", "find_optimal"]
