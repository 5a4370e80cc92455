"""Which approach recommends N*, and what a reader should distrust about each recommendation.

Approach 2 (the isoFLOP frontier) reads the optimum off the runs' own profiles, so it is the
default; Approach 3 (the parametric law) is reported beside it. When the runs form isoFLOP groups
but fewer than 2 of them bracket their optimum, no run shows where the optimum is, so nothing is
recommended (unless Approach 3 was asked for explicitly, which then carries a caution) and the
refused budgets say which runs to add. Only a table without any isoFLOP design (assorted runs)
falls back to Approach 3, and says so.
"""

from __future__ import annotations

from . import isoflop

#: Approaches 2 and 3 further apart than this factor on N* are flagged: the choice of method matters
DISAGREE_FACTOR = 1.5
#: compute-optimal tokens per parameter outside this range are far from any published optimum
TOKENS_PER_PARAM_RANGE = (1.0, 1000.0)
#: a refused budget's fitted minimum within this factor of its sizes is named as where to add sizes
NEAR_VERTEX = 10.0
#: a target budget beyond this multiple of the largest fitted budget is a long extrapolation
EXTRAPOLATION_WARN = 100.0
METHOD_NAMES = {"isoflop": "isoFLOP frontier (Approach 2)", "parametric": "parametric law (Approach 3)"}


def runs_to_add(entry: dict) -> str:
    """What to train so that a refused budget brackets its optimum, e.g. 'add larger sizes'."""
    reason = entry.get("reason") or ""
    lo, hi = entry["N_range"]
    if reason.startswith(isoflop.EDGE_LARGEST):
        what = f"add sizes above N={hi:.3g}"
    elif reason.startswith(isoflop.EDGE_SMALLEST):
        what = f"add sizes below N={lo:.3g}"
    elif reason.startswith(isoflop.OUTSIDE) and entry.get("N_opt"):
        n_opt = entry["N_opt"]
        side = f"below N={lo:.3g}" if n_opt < lo else f"above N={hi:.3g}"
        # a parabola through a flat or noisy profile can put its vertex absurdly far out (N < 1): name the
        # side to extend, and the vertex only when it is near enough to aim at
        near = lo / NEAR_VERTEX <= n_opt <= hi * NEAR_VERTEX
        what = f"add sizes {side}" + (f", toward N={n_opt:.3g} where the fitted minimum lies" if near else
                                      f" (the fitted minimum, N={n_opt:.3g}, is too far out to aim at: "
                                      "the profile may be too noisy or flat)")
    elif "distinct sizes" in reason:
        what = "add sizes spanning the expected optimum"
    else:
        what = "add sizes closer together around the lowest loss"
    return f"budget C={entry['C']:.3g} ({reason}): {what}"


def choose_approach(iso: dict, recommend_from: str) -> dict:
    """``fit.json["recommend"]``: the requested approach, the one used (None: no recommendation),
    why it differs, and the runs to add when nothing can be recommended."""
    choice = {"from": recommend_from, "method": recommend_from, "reason": None, "add_runs": []}
    if iso["a"] is not None:
        return choice
    refused = [e for e in iso["per_budget"] if not e["interior"]]
    bracketed = f"{len(iso['per_budget']) - len(refused)} of {len(iso['per_budget'])} isoFLOP budgets have an " \
                "interior minimum (need 2 or more)"
    if iso["per_budget"]:
        choice["add_runs"] = [runs_to_add(e) for e in refused]
        if recommend_from == "isoflop":
            choice.update(method=None, reason=f"no recommendation: {bracketed}, so no run shows where the "
                                              "optimum lies (fit.recommend_from: parametric recommends anyway)")
        else:
            choice["reason"] = f"only {bracketed}: Approach 3's N* is checked by no isoFLOP profile"
    elif recommend_from == "isoflop":
        choice.update(method="parametric", reason="Approach 2 unavailable (the runs form no isoFLOP groups): "
                                                  "recommending from Approach 3, the parametric law")
    return choice


def _recommended(entry: dict, method: str) -> dict:
    if method == "isoflop":
        n, d, ci = entry["isoflop_N"], entry["isoflop_D"], entry["isoflop_ci"]
    else:
        n, d, ci = entry["N"], entry["D"], {"N": entry["ci"]["N"], "D": entry["ci"]["D"]}
    return {"method": method, "N": n, "D": d, "tokens_per_param": d / n, "ci": ci}


def backtest_flag(backtest: dict) -> str | None:
    """The failed backtest in words, or None when it passed or could not run."""
    if backtest.get("passed") is not False:
        return None
    missed = [q for q, key in (("N*", "N_inside"), ("loss", "loss_inside"))
              if (backtest["folds"][-1] if backtest.get("folds") else {}).get(key) is False]
    return (f"backtest failed: the largest budget's {' and '.join(missed)} fell outside the interval predicted from "
            "the budgets below; the law error it measured widens this interval")


def flags(entry: dict, choice: dict, backtest: dict | None = None) -> list[str]:
    """Why to distrust one prediction: fallback, disagreement, odd tokens per parameter, extrapolation,
    a failed backtest."""
    out = [choice["reason"]] if choice["reason"] else []
    failed = backtest_flag(backtest or {})
    if failed:
        out.append(failed)
    rec = entry.get("recommended")
    if entry["isoflop_N"] is not None:
        ratio = entry["isoflop_N"] / entry["N"]
        if max(ratio, 1 / ratio) > DISAGREE_FACTOR:
            out.append(f"Approach 2 and 3 differ by {max(ratio, 1 / ratio):.1f}x on N* ({entry['isoflop_N']:.3g} "
                       f"against {entry['N']:.3g}): the recommendation depends on the method")
    if rec is not None:
        lo, hi = TOKENS_PER_PARAM_RANGE
        tpp = rec["tokens_per_param"]
        if not lo <= tpp <= hi:
            out.append(f"{tpp:.3g} tokens per parameter is outside [{lo:g}, {hi:g}]: far from any published "
                       "compute-optimal ratio; check the FLOP convention and the sweep")
    if entry["extrapolation_factor"] > EXTRAPOLATION_WARN:
        out.append(f"extrapolated {entry['extrapolation_factor']:.0f}x beyond the largest fitted budget")
    return out


def annotate(predictions: list[dict], choice: dict, backtest: dict | None = None) -> None:
    """Add ``recommended`` (method, N, D, tokens per parameter, interval; None) and ``flags`` to each."""
    for entry in predictions:
        method = choice["method"]
        value = entry["isoflop_N"] if method == "isoflop" else entry["N"]
        entry["recommended"] = _recommended(entry, method) if method and value is not None else None
        entry["flags"] = flags(entry, choice, backtest)
