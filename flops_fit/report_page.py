"""The one-page summary of a sweep: the decision first, then the evidence and every warning.

Snakemake's report shows HTML items inline but offers TSV files only as downloads, so the numbers
a reader needs (recommendations, fitted laws with intervals, warnings, each run's outcome) are
rendered here as one self-contained HTML page (inline CSS, no scripts, no external files) that the
report embeds and that also opens on its own.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from flops_fit import learning
from flops_fit.fitting.records import ScalingFit
from flops_fit.fitting.summary import (SUMMARY_COLUMNS, backtest_line, fold_rows, prefixed, summary_rows,
                                      uncertainty_line)
from flops_fit.paths import run_file
from flops_fit.planning import repetition_warning, six_n_warning
from flops_fit.recommend import design_lines, lines, no_recommendation

#: columns of the runs table shown on the page (plan columns, then the run's outcome)
RUN_COLUMNS = ["run_id", "role", "wave", "budget", "size", "params", "tokens", "batch_size", "steps", "epochs", "lr",
               "branch_of", "branch_step", "status", "eval_loss", "wall_time_s", "reason"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.decision { background: #eef6ee; border-left: 4px solid #2a7; padding: .4em .8em; margin: .3em 0; }
.warning { background: #fff4e0; border-left: 4px solid #e90; padding: .3em .8em; margin: .3em 0; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
"""


def run_outcomes(runs: pd.DataFrame, runs_dir: str | Path, chance: float | None = None) -> pd.DataFrame:
    """The runs table with each run's outcome (status, held-out loss, wall time, reason) joined on; a run
    that did not learn (against its start or ``chance``, as the fit judges it) is ``no_learning``."""
    outcomes = []
    for run_id in runs["run_id"]:
        path = run_file(runs_dir, run_id)
        metrics = json.loads(path.read_text()) if path.exists() else {"status": "missing"}
        flat = learning.no_learning(metrics, path.parent, chance)  # finished, but it stayed at its start or chance
        if flat:
            metrics = {**metrics, "status": "no_learning", "reason": flat}
        outcomes.append({key: metrics.get(key) for key in ("status", "eval_loss", "wall_time_s", "reason")})
    return pd.concat([runs.reset_index(drop=True), pd.DataFrame(outcomes)], axis=1)


def retried_runs(runs: pd.DataFrame, runs_dir: str | Path) -> pd.DataFrame:
    """Runs that diverged at least once: every attempt's lr and outcome, and the status that counts.

    A run retried to success is in the fit at a lower lr than planned; one still diverged is a hole
    in its IsoFLOP profile. Both belong on the page, not only in the logs.
    """
    rows = []
    for run_id in runs["run_id"]:
        path = run_file(runs_dir, run_id)
        attempts = (json.loads(path.read_text()).get("attempts") or []) if path.exists() else []
        if len(attempts) > 1 or any(a["status"] == "diverged" for a in attempts):
            rows.append({
                "run_id": run_id,
                "status": attempts[-1]["status"] if attempts[-1]["status"] == "diverged" else "retried",
                "lrs": " → ".join(f"{a['lr']:.3g} ({a['status']})" for a in attempts),
                "reason": next((a["reason"] for a in reversed(attempts) if a["reason"]), None),
            })
    return pd.DataFrame(rows, columns=["run_id", "status", "lrs", "reason"])


#: the recommendation columns shown on the page (the TSV has them all)
DECISION_COLUMNS = ["C", "size_param", "size", "N", "method", "N_star", "N_star_lo", "N_star_hi", "N_star_isoflop",
                    "N_star_parametric", "D", "batch_size", "steps", "epochs", "loss", "loss_lo", "loss_hi"]


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(frame: pd.DataFrame) -> str:
    """An HTML table with 4 significant digits and empty cells for missing values (not 'None')."""
    return frame.astype(object).map(_cell).to_html(index=False, border=0)


def _notes(items: list[str], css: str) -> str:
    return "\n".join(f'<p class="{css}">{html.escape(item)}</p>' for item in items)


def recipe_notes(calibration: dict | None, fit: ScalingFit) -> list[str]:
    """How the recipe was checked: the calibrated lr law (or that it was assumed) and the run-to-run noise."""
    notes = []
    if not calibration or not calibration.get("enabled"):
        notes.append("learning rate: the configured rule, not calibrated (sweep.lr_calibration.enabled: false)")
    else:
        per_size = "; ".join(
            f"N={p['params']:.3g}: best lr {p['best_lr']:.3g}{' (at the edge of its grid)' if p['at_edge'] else ''}"
            for p in calibration["per_size"]
        )
        notes.append(f"learning rate calibrated at the smallest budget: lr*(N) = {calibration['coefficient']:.3g} · "
                     f"N^{calibration['exponent']:.3f} ({per_size})")
        notes += [prefixed("lr calibration", w) for w in calibration.get("warnings", [])]
    if fit.noise.sd is not None:
        notes.append(f"run-to-run loss noise: sd {fit.noise.sd:.3g} from {fit.noise.source}; "
                     "it floors each optimum's uncertainty")
    else:
        notes.append("run-to-run noise not measured (sweep.seed_replicates: 0)")
    notes += cost_notes(fit)
    return notes


def cost_notes(fit: ScalingFit) -> list[str]:
    """The compute the sweep trained, and what sharing stable runs saved (``sweep.reuse: branches``)."""
    cost = fit.cost
    if cost is None:
        return []
    if not cost.branched_runs:
        return [f"compute trained: {cost.trained_flops:.4g} FLOPs, every run from step 0 (sweep.reuse: none)"]
    return [f"compute trained: {cost.trained_flops:.4g} FLOPs, {cost.ratio:.0%} of the {cost.separate_runs_flops:.4g} "
            f"the same runs cost trained separately (saved {1 - cost.ratio:.0%}): {cost.branched_runs} runs are "
            f"cooldowns of {cost.stable_runs} shared stable runs (branch_of in the runs table); each run's C still "
            "counts its whole token history"]


def design_section(fit: ScalingFit) -> str:
    """The sweep's waves (runs, FLOPs placed, the interval of N* each was chosen from) and its outlook."""
    record = fit.design
    if not record or not record.get("waves"):
        return ""
    waves = pd.DataFrame(record["waves"]).rename(columns={
        "flops": "FLOPs", "flops_placed": "FLOPs placed so far", "width_before": "N* interval before (hi/lo)"})
    precision = record.get("precision")
    asked = (f"asked for: N* at {precision['budget']:.3g} within x{precision['N_star']:g}"
             + (f", loss within {precision['loss']:g}" if precision.get("loss") is not None else "")
             if precision else "the configured ladder (no sweep.precision)")
    return f"""<h2>Sweep design: {html.escape(asked)}</h2>
{_notes(design_lines(fit), "decision")}
{_table(waves)}"""


def summary_page(
    fit: ScalingFit, recommendations: pd.DataFrame, outcomes: pd.DataFrame, calibration: dict | None = None,
    retried: pd.DataFrame | None = None,
) -> str:
    """The page's HTML: recommendations, backtest, warnings, recipe, fit summary (with intervals), runs."""
    summary = pd.DataFrame([r for r in summary_rows(fit) if r[0] != "warning"], columns=list(SUMMARY_COLUMNS))
    decisions = (lines(recommendations) or no_recommendation(fit)
                 or ["no target_budgets configured: add some to get a recommendation"])
    # the plan's two data-and-compute warnings (one line each), then the fit's
    all_warnings = repetition_warning(outcomes) + six_n_warning(outcomes) + list(fit.warnings)
    level, resamples = fit.bootstrap.ci_level, fit.bootstrap.resamples
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flops-fit summary</title><style>{STYLE}</style></head>
<body>
<h1>flops-fit: compute-optimal scaling laws ({fit.n_runs} runs fitted)</h1>
<h2>Recommendations</h2>
{_notes(decisions, "decision")}
{_table(recommendations[[c for c in DECISION_COLUMNS if c in recommendations.columns]]) if len(recommendations) else ""}
<h2>Backtest: every budget predicted from the budgets below it</h2>
<p>{html.escape(backtest_line(fit.backtest))}</p>
{_table(pd.DataFrame(fold_rows(fit.backtest))) if fit.backtest.folds else ""}
<p>{html.escape(uncertainty_line(fit) or "")}</p>
{design_section(fit)}
<h2>Warnings ({len(all_warnings)})</h2>
{_notes(all_warnings, "warning") or "<p>none</p>"}
<h2>Recipe: how the learning rate and the noise were measured, and the compute trained</h2>
{_notes(recipe_notes(calibration, fit), "decision")}
<h2>Fit summary ({level:.0%} bootstrap intervals, {resamples} resamples)</h2>
{_table(summary)}
<h2>Diverged runs: retried at a lower lr, or still diverged ({0 if retried is None else len(retried)})</h2>
{_table(retried) if retried is not None and len(retried) else "<p>none</p>"}
<h2>Runs</h2>
{_table(outcomes[[c for c in RUN_COLUMNS if c in outcomes.columns]])}
</body></html>
"""


#: the verification columns shown on its page (the TSV has them all)
VERIFY_COLUMNS = ["C", "size", "N", "D", "recommended", "method", "predicted_loss", "predicted_loss_lo",
                  "predicted_loss_hi", "observed_loss", "rel_error", "inside_interval", "observed_best",
                  "other_method", "other_N_star", "other_predicted_loss", "status"]


def verification_page(verification: pd.DataFrame, sentences: list[str]) -> str:
    """The verify rule's page: per verify budget, whether the recommended size was the observed best of
    the sizes trained, and each run's observed loss against the law's prediction (``sentences``:
    :func:`flops_fit.verify.lines`, or why nothing was verified).

    Its own page, not a section of the summary: the summary belongs to the default target, which
    must not train the verification runs.
    """
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flops-fit verification</title><style>{STYLE}</style></head>
<body>
<h1>flops-fit: the recommended size and its neighbours, trained and compared with the prediction</h1>
{_notes(sentences, "decision")}
{_table(verification[[c for c in VERIFY_COLUMNS if c in verification.columns]]) if len(verification) else ""}
<p>Sizes: the recommended one and its neighbours at about N*/2 and 2N* (<code>verify.sizes</code>), each on the
whole budget; <code>observed_best</code> marks the lowest observed loss at each budget. A gap within 2σ√2 (σ: one
run's seed noise, from the sweep's replicates) cannot tell two sizes apart. Predicted loss: Approach 3's L(N, D) at
each run's own N and tokens; its interval is the fit's bootstrap interval of the loss at that budget's frontier point,
carried over to the run (fit.json keeps no per-size interval: beside N* it is the same to first order, a factor of
2 away it understates the spread; the fit's uncertainty, not one run's seed noise). The other approach's loss is
the same law at the N*, D* that approach would have chosen.</p>
</body></html>
"""
