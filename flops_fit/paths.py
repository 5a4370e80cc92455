"""Every file of a sweep's results directory: its name, who writes it and who reads it.

The workflow's rules name their inputs and outputs through :class:`Results` (``RESULTS`` in
``workflow/rules/common.smk``) and :func:`flops_fit.find_optimal` writes the same tree under its
``output_dir``; step functions receive the paths they need as arguments and never derive one path
from another. A run's own directory holds :data:`METRICS`, :data:`CURVE` and (for ``find_optimal``)
:data:`RUN_PLAN`: :func:`run_file` is the one place that joins them.

=========================  ==================================  ===================================
path (under the root)      written by                          read by
=========================  ==================================  ===================================
validated.json             validate                            every later step (the config)
plan/lr_calibration.tsv    calibration_plan                    calibrate, train
plan/lr_calibration.json   calibrate                           place, verify_plan, summarize
plan/cost_estimate.json    calibration_plan, find_optimal      people (the sweep's planned FLOPs,
                           (before any run trains)             measured FLOPs/s, expected wall time)
plan/waves/{wave}.tsv      place (cumulative table per wave)   the next place, train, plan
plan/waves/{wave}.design.json place (FLOPs, decision)         plan
plan/runs.tsv              plan (the last wave's table)        fit, recommend, plot, summarize
plan/design.json           plan (the waves' records)           summarize, find_optimal
runs/{id}/metrics.json     train                               place, calibrate, fit, summarize
runs/{id}/curve.tsv        train                               plot (loss curves)
runs/{id}/plan.json        find_optimal (the run's identity)   find_optimal (keep or retrain)
checkpoints/{id}/          train (resumable state, not an      train (resume); removed when done
                           output: Snakemake deletes those)
stable/{sid}/step{k}/      stable (branch checkpoint of a      the next stable segment of sid,
  checkpoint.pt            stable run at step k)               train (cooldowns branched at k)
checkpoints/stable_{sid}_  stable (resumable state of a        stable (resume); removed when done
  step{k}/                 segment, as for a run)
fit/fit.json               fit (:class:`ScalingFit`)           recommend, plot, summarize, verify
fit/summary.tsv            fit                                 people
fit/runs_results.tsv       fit (the fitted table)              plot
fit/recommendations.tsv    recommend                           summarize, verify_plan, verify
plots/{figure}.png|svg     plot                                the report
report/summary.html        summarize                           the report
report/runs.tsv            summarize                           the report, people
verify/plan.tsv            verify_plan                         train, verify
verify/verify.tsv|html     verify                              the report, people
=========================  ==================================  ===================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

METRICS = "metrics.json"
CURVE = "curve.tsv"
RUN_PLAN = "plan.json"


def run_file(runs_dir: str | Path, run_id: str, name: str = METRICS) -> Path:
    """``runs_dir/<run_id>/<name>``: a file of one run's directory."""
    return Path(runs_dir) / str(run_id) / name


@dataclass(frozen=True)
class Results:
    """The results tree rooted at ``root`` (``results/`` in the workflow, ``output_dir`` in the API).

    Methods taking a run id or wave also accept a wildcard such as ``"{run_id}"``, so rules can
    declare their patterns with them.
    """

    root: Path = Path("results")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- validate and plan ------------------------------------------------------------------------
    @property
    def validated(self) -> Path:
        return self.root / "validated.json"

    @property
    def plan_dir(self) -> Path:
        return self.root / "plan"

    @property
    def calibration_plan(self) -> Path:
        return self.plan_dir / "lr_calibration.tsv"

    @property
    def calibration_law(self) -> Path:
        return self.plan_dir / "lr_calibration.json"

    @property
    def cost_estimate(self) -> Path:
        """The sweep's cost before it trains (:func:`flops_fit.cost.estimate_cost`)."""
        return self.plan_dir / "cost_estimate.json"

    def wave(self, wave: int | str) -> Path:
        return self.plan_dir / "waves" / f"{wave}.tsv"

    def wave_design(self, wave: int | str) -> Path:
        """What a wave added and why: its FLOPs and, with ``sweep.precision``, the decision behind it."""
        return self.plan_dir / "waves" / f"{wave}.design.json"

    @property
    def design(self) -> Path:
        """Every wave's design record and how the sweep ended (``sweep.precision``): plan writes it."""
        return self.plan_dir / "design.json"

    @property
    def runs_table(self) -> Path:
        return self.plan_dir / "runs.tsv"

    # -- train ------------------------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def metrics(self, run_id: str) -> Path:
        return run_file(self.runs_dir, run_id, METRICS)

    def curve(self, run_id: str) -> Path:
        return run_file(self.runs_dir, run_id, CURVE)

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.root / "checkpoints" / run_id

    def branch_dir(self, stable_id: str, step: int | str) -> Path:
        """The directory of stable run ``stable_id``'s branch checkpoint at ``step`` (``sweep.reuse: branches``)."""
        return self.root / "stable" / stable_id / f"step{step}"

    def branch_checkpoint(self, stable_id: str, step: int | str) -> Path:
        """The branch checkpoint file itself (the stable rule's output)."""
        return self.branch_dir(stable_id, step) / "checkpoint.pt"

    def segment_checkpoint_dir(self, stable_id: str, step: int | str) -> Path:
        """Resumable state of the stable segment ending at ``step`` (not an output, like a run's)."""
        return self.root / "checkpoints" / f"stable_{stable_id}_step{step}"

    # -- fit, recommend, plot, summarize ------------------------------------------------------------
    @property
    def fit_dir(self) -> Path:
        return self.root / "fit"

    @property
    def fit(self) -> Path:
        return self.fit_dir / "fit.json"

    @property
    def fit_summary(self) -> Path:
        return self.fit_dir / "summary.tsv"

    @property
    def fitted_runs(self) -> Path:
        return self.fit_dir / "runs_results.tsv"

    @property
    def recommendations(self) -> Path:
        return self.fit_dir / "recommendations.tsv"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def plot(self, figure: str, ext: str = "png") -> Path:
        return self.plots_dir / f"{figure}.{ext}"

    @property
    def summary_page(self) -> Path:
        return self.root / "report" / "summary.html"

    @property
    def report_runs(self) -> Path:
        return self.root / "report" / "runs.tsv"

    # -- verify -----------------------------------------------------------------------------------
    @property
    def verify_dir(self) -> Path:
        return self.root / "verify"

    @property
    def verify_plan(self) -> Path:
        return self.verify_dir / "plan.tsv"

    @property
    def verify_table(self) -> Path:
        return self.verify_dir / "verify.tsv"

    @property
    def verify_page(self) -> Path:
        return self.verify_dir / "verify.html"
