"""The fit in words: the lines ``flops-fit fit`` prints, and ``summary.tsv`` (one row per estimate)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from flops_fit.io import write_text

from .records import Backtest, BudgetOptimum, IsoflopFit, ParametricFit, ScalingFit, write_fit_json


def _fmt(v: Any) -> str:
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


def estimate(name: str, value: float | None, ci: list[float] | None) -> str:
    """``a = 0.503 [0.47, 0.54]``: 3 decimals for the value, the interval to the decimals its width
    supports (2 for a width of 0.07, 3 for 0.004); no interval without a bootstrap."""
    if value is None:
        return f"{name} = n/a"
    text = f"{name} = {value:.3f}"
    if not ci or None in ci:
        return text
    width = abs(ci[1] - ci[0])
    d = 4 if width <= 0 else min(4, max(2, -math.floor(math.log10(width))))
    return f"{text} [{ci[0]:.{d}f}, {ci[1]:.{d}f}]"


def count(value: float | None) -> str:
    """3 significant digits, short exponent: 2.1e9 rather than 2.1e+09."""
    if value is None:
        return "n/a"
    mantissa, _, exponent = f"{value:.3g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def prefixed(prefix: str, message: str) -> str:
    """``prefix: message``, or the message alone when it already starts with the prefix's subject
    (its text before any parenthesis): "Approach 2 (isoFLOP profiles): Approach 2 skipped: ..."
    would say it twice."""
    subject = prefix.split(" (")[0]
    return message if message.startswith(subject) else f"{prefix}: {message}"


def _approach2_line(iso: IsoflopFit) -> str:
    if iso.a is None:
        return prefixed("Approach 2 (isoFLOP profiles)", iso.skipped or "not fitted")
    shape = {2: "parabola", 3: "cubic"}.get(iso.degree_used, f"degree {iso.degree_used}")
    why = f" ({iso.degree_reason})" if iso.degree == "auto" and iso.degree_reason else ""
    text = (f"Approach 2 (isoFLOP profiles, one {shape} per budget{why}; {iso.n_budgets_used} of "
            f"{len(iso.per_budget)} budgets used): {estimate('a', iso.a, iso.ci.get('a'))}, "
            f"{estimate('b', iso.b, iso.ci.get('b'))}")
    return text + (f"; no interval: {iso.no_interval}" if iso.no_interval else "")


def _approach3_line(par: ParametricFit) -> str:
    ci = par.ci
    return (f"Approach 3 (L = E + A/N^alpha + B/D^beta, Huber delta {par.huber_delta:g}): "
            f"{estimate('a', par.a, ci.get('a'))}, {estimate('alpha', par.alpha, ci.get('alpha'))}, "
            f"{estimate('beta', par.beta, ci.get('beta'))}, E = {par.E:.3g}"
            + ("" if par.loss_floor is None else f" (loss floor {par.loss_floor:.4g})")
            + f", A = {par.A:.3g}, B = {par.B:.3g}")


def _in(inside: bool | None) -> str:
    return "" if inside is None else (" inside" if inside else " OUTSIDE")


def _span(ci, fmt) -> str:
    return f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""


def backtest_line(bt: Backtest | None) -> str:
    """One sentence on the backtest of the largest budget, its intervals and verdict (or why there is none)."""
    if bt is None or bt.held_out_budget is None and bt.reason is None:
        return "backtest: not run"
    if bt.reason:
        return f"backtest: not possible: {bt.reason}"
    last = bt.folds[-1] if bt.folds else {}
    text = (f"backtest (largest budget C={count(bt.held_out_budget)} predicted from the budgets below): N* predicted "
            f"{count(bt.predicted_N_opt)}{_span(bt.N_ci, count)}, observed {count(bt.observed_N_opt)} "
            f"({bt.N_opt_ratio:.2f}x){_in(last.get('N_inside'))}")
    if bt.predicted_loss is not None:
        text += (f"; loss predicted {bt.predicted_loss:.4g}{_span(bt.loss_ci, lambda v: f'{v:.4g}')}, observed "
                 f"{bt.observed_loss:.4g}{_in(last.get('loss_inside'))}")
    if bt.passed is not None:
        text += "; passed" if bt.passed else "; FAILED: the recommendations' intervals are widened by the error it measured"
    if bt.folds_inside:
        n, m = bt.folds_inside.get("N", [0, 0])
        text += f" (all {len(bt.folds)} rolling folds: N* inside {n} of {m}"
        n, m = bt.folds_inside.get("loss", [0, 0])
        text += f", loss inside {n} of {m})" if m else ")"
    return text


def fold_rows(bt: Backtest) -> list[dict]:
    """The rolling backtest as table rows: each budget predicted from the budgets below it."""
    return [{"C": f["C"], "budgets_fitted": f["budgets_fitted"], "e-folds extrapolated": round(f["distance_lnC"], 2),
             "N* predicted": f["predicted_N_opt"], "N* lo": (f["N_ci"] or [None, None])[0],
             "N* hi": (f["N_ci"] or [None, None])[1], "N* observed": f["observed_N_opt"], "N* inside": f["N_inside"],
             "loss predicted": f["predicted_loss"], "loss lo": (f["loss_ci"] or [None, None])[0],
             "loss hi": (f["loss_ci"] or [None, None])[1], "loss observed": f["observed_loss"],
             "loss inside": f["loss_inside"]} for f in bt.folds]


def uncertainty_line(result: ScalingFit) -> str | None:
    """What the intervals are made of: the law error the backtest measured and the run noise."""
    u = result.uncertainty
    if not u:
        return None
    law_n, law_l = u["law_error"]["N"], u["law_error"]["loss"]
    return (f"intervals: parameter draws + run noise (sd {u['run_noise_sd']:.3g}, {u['run_noise_source']}) + law "
            f"error per e-fold of C extrapolated: ln N* {law_n['tau_per_lnC']:.3g}, ln loss {law_l['tau_per_lnC']:.3g} "
            f"(from {law_n['folds']} and {law_l['folds']} rolling-origin folds with a weak prior)")


def prediction_lines(result: ScalingFit) -> list[str]:
    """Per target budget: the recommended N* with the approach that gave it, the other beside, flags."""
    choice = result.recommend
    if result.predictions and choice.method is None:
        return [choice.reason or "no recommendation"] + [f"  to add: {a}" for a in choice.add_runs]
    out = []
    for p in result.predictions:
        rec = p.recommended
        ci = rec.ci.get("N")
        interval = f" [{count(ci[0])}, {count(ci[1])}]" if ci else " (no interval)"
        other = (f" (Approach 3: {count(p.N)})" if rec.method == "isoflop"
                 else f" (Approach 2: {count(p.isoflop_N)})" if p.isoflop_N is not None else "")
        out.append(f"C = {count(p.C)}: N* = {count(rec.N)}{interval} from the "
                   f"{'isoFLOP frontier (Approach 2)' if rec.method == 'isoflop' else 'parametric law (Approach 3)'}"
                   f"{other}, D* = {count(rec.D)} ({rec.tokens_per_param:.3g} tokens/parameter), "
                   f"loss {p.loss:.4g}{_span(p.ci.get('loss'), lambda v: f'{v:.4g}')} (Approach 3)")
        out += [f"  caution: {flag}" for flag in p.flags]
    if result.predictions and result.isoflop.no_interval:
        out.append(f"  no interval for Approach 2: {result.isoflop.no_interval}")
    return out


def summary_lines(result: ScalingFit) -> list[str]:
    """The fit in a few readable lines (what ``flops-fit fit`` prints)."""
    iso = result.isoflop
    source = iso.grouping or "the budget column"
    groups = (f"isoFLOP groups: from {source} ({len(iso.per_budget)} budgets)" if iso.per_budget
              else "isoFLOP groups: none (no budget column, planned budgets or separated C values)")
    lines = [groups, _approach2_line(iso), _approach3_line(result.parametric)]
    if result.noise.sd is not None:
        lines.append(f"loss noise: sd {result.noise.sd:.3g} ({result.noise.source}), a floor on each profile's residual sd")
    extra = [line for line in [uncertainty_line(result)] if line]
    return lines + extra + [backtest_line(result.backtest)] + prediction_lines(result)


#: the columns of ``summary.tsv``: value, ci_lo and ci_hi hold numbers or nothing, text goes to note
SUMMARY_COLUMNS = ("section", "quantity", "value", "ci_lo", "ci_hi", "note")

Row = tuple[str, str, float | None, float | None, float | None, str | None]


def _budget_note(pb: BudgetOptimum) -> str:
    """Whether a budget's optimum is used and why (the edge reason, or how its degree was chosen)."""
    if pb.interior:
        return f"interior; {pb.degree_reason}" if pb.degree_reason else "interior"
    return f"refused: {pb.reason}" if pb.reason else "refused"


def summary_rows(result: ScalingFit) -> list[Row]:
    """(section, quantity, value, ci_lo, ci_hi, note) rows of the summary table: numbers in the three
    numeric columns (None: none), text only in ``note``, so the table reads back as numbers."""
    rows: list[Row] = []
    par = result.parametric
    for name in ("E", "A", "B", "alpha", "beta", "a", "b"):
        ci = par.ci.get(name) or [None, None]
        rows.append(("parametric", name, getattr(par, name), *ci, None))
    rows.append(("parametric", "objective", par.objective, None, None, None))
    iso = result.isoflop
    for name in ("a", "b"):
        ci = iso.ci.get(name) or [None, None]
        rows.append(("isoflop", name, getattr(iso, name), *ci, iso.skipped if iso.a is None else None))
    for pb in iso.per_budget:
        rows.append(("isoflop_budget", f"N_opt@C={pb.C:.4g}", pb.N_opt, None, None, _budget_note(pb)))
    for p in result.predictions:
        for q in ("N", "D", "loss"):
            ci = p.ci.get(q) or [None, None]
            rows.append(("prediction", f"{q}*@C={p.C:.4g}", getattr(p, q), *ci, None))
        if p.isoflop_N is not None:
            ci = p.isoflop_ci.get("N") or [None, None]
            rows.append(("prediction_isoflop", f"N*@C={p.C:.4g}", p.isoflop_N, *ci, None))
    for w in result.warnings:
        rows.append(("warning", "", None, None, None, w))
    return rows


def write_fit(result: ScalingFit, fit_json: str | Path, summary_tsv: str | Path) -> None:
    """Write ``fit.json`` (:meth:`ScalingFit.to_dict`) and ``summary.tsv`` (:func:`summary_rows`), atomically."""
    write_fit_json(result, fit_json)
    lines = ["\t".join(SUMMARY_COLUMNS)]
    lines += ["\t".join(_fmt(v).replace("\t", " ") for v in row) for row in summary_rows(result)]
    write_text("\n".join(lines) + "\n", summary_tsv)
