"""Reading and validating results tables: delimiters, clear errors naming rows, budget groups."""

from __future__ import annotations

import numpy as np
import pytest

import pandas as pd

from flops_fit.fitting.fit import prepare_table
from flops_fit.fitting.table import assign_budgets, drop_failed, read_table, separated_groups, validate_table
from fitting_support import law, synthetic_sweep


@pytest.mark.parametrize("name,sep", [("runs.csv", ","), ("runs.tsv", "\t"), ("runs.txt", "\t"), ("runs.dat", ",")])
def test_reads_csv_and_tsv_by_extension_or_sniffing(tmp_path, name, sep):
    df = synthetic_sweep(budgets=(1e18,))
    df.to_csv(tmp_path / name, sep=sep, index=False)
    got = read_table(tmp_path / name)
    assert list(got.columns) == list(df.columns)
    np.testing.assert_allclose(got["loss"], df["loss"])


def test_missing_column_is_named_with_the_columns_found(tmp_path):
    synthetic_sweep(budgets=(1e18,)).drop(columns="D").to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) D; found N, C, budget, loss"):
        read_table(tmp_path / "t.csv")


def test_non_positive_and_non_finite_values_name_the_rows():
    df = synthetic_sweep(budgets=(1e18,))
    bad = df.copy()
    bad.loc[3, "N"] = -1.0
    with pytest.raises(ValueError, match=r"column N must be positive; rows line 5 are not"):
        validate_table(bad)
    bad = df.copy()
    bad["run_id"] = [f"r{i}" for i in range(len(bad))]
    bad.loc[[1, 2], "loss"] = [np.inf, np.nan]
    with pytest.raises(ValueError, match=r"column loss has .* in rows r1, r2"):
        validate_table(bad)
    bad = df.astype({"D": object})
    bad.loc[0, "D"] = "lots"
    with pytest.raises(ValueError, match=r"column D has .*non-numeric.* line 2"):
        validate_table(bad)


def test_too_few_points():
    with pytest.raises(ValueError, match=r"5 row\(s\); the parametric fit needs at least 6"):
        validate_table(synthetic_sweep(budgets=(1e18,)).head(5))


def test_missing_file_and_unparseable_table(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.bin").write_text("just one token")
    with pytest.raises(ValueError, match="delimiter"):
        read_table(tmp_path / "x.bin")


def test_failed_runs_are_dropped_with_a_warning_naming_them():
    df = synthetic_sweep(budgets=(1e18,))
    df["run_id"] = [f"r{i}" for i in range(len(df))]
    df["status"] = ["ok"] * (len(df) - 1) + ["diverged"]
    kept, warnings = drop_failed(df)
    assert len(kept) == len(df) - 1 and "r8" in warnings[0]


def test_budgets_from_planned_list_and_from_gaps_in_C():
    C = np.array([1e18, 1.005e18, 0.99e18, 3.01e18, 3e18, 7e19])
    groups, warnings = assign_budgets(C, [1e18, 3e18])
    np.testing.assert_array_equal(groups[:5], [1e18, 1e18, 1e18, 3e18, 3e18])
    assert np.isnan(groups[5]) and "join no isoFLOP group" in warnings[0]
    # without planned budgets: groups only where the C values clearly form them
    N = np.tile(np.geomspace(1e7, 1e9, 5), 3)
    C = np.repeat([1e18, 3e18, 1e19], 5) * (1 + 0.004 * np.tile(np.arange(5), 3))
    groups, why_not = separated_groups(C, N)
    assert why_not is None and np.unique(groups).size == 3
    # assorted budgets chained over a wide range are not an isoFLOP group
    groups, why_not = separated_groups(np.geomspace(1e18, 1e20, 200), np.geomspace(1e7, 1e9, 200))
    assert np.isnan(groups).all() and "do not form separated isoFLOP groups" in why_not
    # two coincident clusters among many assorted runs (checkpoints of a few sizes) are no design
    C = np.concatenate([np.repeat([1e18, 1e19], 5), np.geomspace(2e18, 8e18, 40)])
    groups, why_not = separated_groups(C, np.concatenate([N[:10], np.geomspace(1e7, 1e9, 40)]))
    assert np.isnan(groups).all() and "holding 20% of the runs" in why_not


def test_planned_budgets_close_together_each_keep_their_own_runs():
    """`flops-fit fit --budgets 6e18 1e19 3e19 1e20` on a table without a budget column (C = 6ND):
    runs scattering +-10 % around each budget join that budget, never a neighbour (6e18 and 1e19 are
    1.67x apart); a run beyond the top budget's tolerance stays out and the warning counts it."""
    budgets = [6e18, 1e19, 3e19, 1e20]
    rng = np.random.default_rng(3)
    scatter = np.concatenate([[0.9, 1.1], rng.uniform(0.9, 1.1, 8)])  # the extremes and 8 draws
    true_budget = np.repeat(budgets, scatter.size)
    C = true_budget * np.tile(scatter, len(budgets))
    C = np.append(C, 1.3e20)  # 1.3x the top budget: beyond its 1.25x tolerance
    N = np.geomspace(1e7, 1e9, C.size)
    D = C / (6 * N)
    table = pd.DataFrame({"N": N, "D": D, "loss": law(N, D)})
    prepared, source, warnings = prepare_table(table, budgets)
    assert source == "the planned budgets"
    np.testing.assert_array_equal(prepared["budget"].to_numpy()[:-1], true_budget)
    assert np.isnan(prepared["budget"].iloc[-1])
    assert warnings == ["1 of 41 run(s) (C from 1.3e+20 to 1.3e+20) lie more than 1.25x from every planned "
                        "budget (6e+18, 1e+19, 3e+19, 1e+20) and join no isoFLOP group"]


def test_a_run_joins_the_budget_on_its_side_of_the_geometric_midpoint():
    """Budgets 1.2x apart: the 1.25x tolerance reaches past the neighbour, the midpoint decides."""
    midpoint = np.sqrt(1e19 * 1.2e19)
    groups, warnings = assign_budgets(np.array([midpoint * 0.999, midpoint * 1.001, 1.2e19 * 1.2]), [1.2e19, 1e19])
    np.testing.assert_array_equal(groups, [1e19, 1.2e19, 1.2e19])
    assert warnings == []
