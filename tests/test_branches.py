"""``sweep.reuse: branches`` in the planner: which runs share a stable run, one batch per size, the cost.

Pure functions of the config (no training): the placer plans real rows for a small MLP family, and
the branch columns, segments and cost are checked against hand arithmetic.
"""

from __future__ import annotations


import pandas as pd
import pytest
import torch

from flops_fit import planning
from flops_fit.errors import ConfigError
from flops_fit.placement import Placer
from flops_fit.planning import SizeCatalog, as_table, assign_branches, compute_cost, stable_segments
from flops_fit.recipe import Recipe
from flops_fit.training.schedule import decay_start
from test_planning import MLP
from test_planning import config as planning_config

SIZES = [16, 24, 32, 48, 64, 96, 128, 192, 256]
BUDGETS = (1e9, 4e9)


def plan(reuse: str, budgets=BUDGETS, placement: str = "fixed") -> tuple[pd.DataFrame, Recipe]:
    """Every wave of a fixed placement at once, branch columns assigned as the pipeline does."""
    cfg = planning_config(SIZES, budgets=budgets, placement=placement, reuse=reuse, sizes_per_budget=4,
                          seed_replicates=0)
    rec = Recipe.from_config(cfg)
    catalog = SizeCatalog(MLP, cfg["model"], "6N", torch.zeros(1, 32), tokens_per_sample=1)
    rows, _ = Placer(rec, cfg["budgets"], catalog, lr_of=lambda n: 1e-3).next_wave(as_table([]), {}, 0)
    table = as_table(rows)
    return assign_branches(table, set(table["run_id"]), rec, cfg["budgets"]), rec


def test_only_sizes_shared_by_two_budgets_branch_and_at_their_decay_start():
    table, rec = plan("branches")
    by_size = table.groupby("size")["budget"].nunique()
    shared = set(by_size[by_size >= 2].index)
    assert shared and set(by_size.index) - shared  # the windows overlap, but not entirely
    for row in table.to_dict("records"):
        if row["size"] in shared:
            assert row["branch_of"] and row["branch_step"] == decay_start(row["steps"], row["warmup_steps"], 0.2)
            assert row["branch_step"] > row["warmup_steps"]
        else:
            assert row["branch_of"] == "" and row["branch_step"] == 0
    # one stable run per shared size; its runs agree on batch, lr and warmup
    for size, rows in table[table["branch_of"] != ""].groupby("size"):
        assert rows["branch_of"].nunique() == 1
        assert rows["batch_size"].nunique() == 1 and rows["warmup_steps"].nunique() == 1


def test_without_reuse_nothing_branches_and_the_batch_follows_the_budget():
    table, _ = plan("none")
    assert (table["branch_of"] == "").all() and (table["branch_step"] == 0).all()
    shared = table.groupby("size").filter(lambda rows: len(rows) >= 2)
    assert (shared.groupby("size")["batch_size"].nunique() > 1).any()  # DeepSeek's B(C): one batch per budget


def test_adaptive_placement_branches_runs_a_budget_above_may_reuse_but_not_the_last_budgets_own():
    cfg = planning_config(SIZES, budgets=BUDGETS, reuse="branches", sizes_per_budget=4)
    rec = Recipe.from_config(cfg)
    catalog = SizeCatalog(MLP, cfg["model"], "6N", torch.zeros(1, 32), tokens_per_sample=1)
    placer = Placer(rec, cfg["budgets"], catalog, lr_of=lambda n: 1e-3)
    rows, _ = placer.next_wave(as_table([]), {}, 0)  # the first budget alone: a larger one is still to come
    first = assign_branches(as_table(rows), {r["run_id"] for r in rows}, rec, cfg["budgets"])
    assert (first["branch_of"] != "").all()
    # the last budget: only the sizes the first one also trained share a stable run
    last, _ = plan("branches", budgets=(4e9,))
    assert (last["branch_of"] == "").all()


def test_cost_counts_each_stable_prefix_once():
    table, _ = plan("branches")
    trained, separate = compute_cost(table)
    assert separate == pytest.approx(table["achieved_flops"].sum())
    expected = 0.0
    for _, rows in table.groupby("size"):
        step_flops = float(rows["batch_size"].iloc[0] * rows["tokens_per_sample"].iloc[0] * rows["flops_per_token"].iloc[0])
        if (rows["branch_of"] == "").all():
            expected += float(rows["achieved_flops"].sum())
        else:  # a stable run to the last branch point, then every cooldown
            expected += step_flops * (rows["branch_step"].max() + (rows["steps"] - rows["branch_step"]).sum())
    assert trained == pytest.approx(expected) and trained < 0.9 * separate
    segments = stable_segments(table)
    assert all(s.start < s.end for s in segments)
    assert {(s.stable_id, s.end) for s in segments} == set(zip(table["branch_of"], table["branch_step"])) - {("", 0)}


def test_a_table_from_before_reuse_reads_as_standalone(tmp_path):
    table, _ = plan("none")
    old = tmp_path / "runs.tsv"
    table.drop(columns=["branch_of", "branch_step"]).to_csv(old, sep="\t", index=False)
    back = planning.read_runs_table(old)
    assert (back["branch_of"] == "").all() and (back["branch_step"] == 0).all()
    identity = planning.run_identity(planning.run_row(back, back["run_id"].iloc[0]))
    assert "branch_of" not in identity and "branch_step" not in identity  # finished runs keep their identity


def test_branches_refuse_fixed_steps_and_snap_sizes_to_one_grid():
    with pytest.raises(ConfigError, match="sweep.steps"):
        Recipe.from_config(planning_config(SIZES, reuse="branches", steps=100))
    rec = Recipe.from_config(planning_config(SIZES, reuse="branches", window_span=27, sizes_per_budget=4))
    assert rec.snap_params(8.5) == pytest.approx(9) and rec.snap_params(1100) == pytest.approx(3 ** 6)
    assert Recipe.from_config(planning_config(SIZES)).snap_params(8.5) == 8.5
    assert rec.batch_budget(1000, 1e20) == pytest.approx(6 * 20 * 1000 ** 2)  # C_opt(N), not the run's budget


def test_branches_train_with_wsd_and_never_retry_a_cooldown():
    from flops_fit.pipeline import training_settings

    branches = planning_config(SIZES, reuse="branches")
    cooldown = training_settings(branches, {"role": "sweep", "branch_of": "d_model16_seed0_x"})
    standalone = training_settings(branches, {"role": "sweep", "branch_of": ""})
    assert cooldown["schedule"]["kind"] == standalone["schedule"]["kind"] == "wsd"
    assert cooldown["divergence"]["retries"] == 0 and standalone["divergence"]["retries"] > 0
    assert training_settings(planning_config(SIZES), {"role": "sweep"})["schedule"]["kind"] == "cosine"


@pytest.mark.slow  # 8 real runs: about a minute on 2 shared cores
def test_find_optimal_trains_stable_segments_then_cooldowns_and_resumes_without_retraining(tmp_path):
    import flops_fit
    from flops_fit.examples.gpt import GPT, next_token_loss
    from flops_fit.examples.markov import MarkovTokens

    def call():
        return flops_fit.find_optimal(
            GPT, "d_model", {"n_layer": 1, "vocab_size": 64, "block_size": 32, "head_dim": 8},
            MarkovTokens(vocab_size=64, seq_len=32, num_samples=16384, gamma=0.7), next_token_loss, [1e10, 3e10],
            sizes=[8, 16, 24, 32, 48], eval_samples=128, output_dir=tmp_path, progress=False, fit={"bootstrap": 10},
            sweep={"sizes_per_budget": 4, "batch_size": 32, "lr": 0.02, "lr_exponent": -0.5, "lr_reference_size": 8,
                   "placement": "fixed", "lr_calibration": {"enabled": False}, "reuse": "branches",
                   "seed_replicates": 0},
        )

    result = call()
    branched = result.runs[result.runs["branch_of"] != ""]
    assert len(branched) >= 4 and branched.groupby("branch_of").size().max() == 2
    assert result.fit.cost.trained_flops < 0.9 * result.fit.cost.separate_runs_flops
    files = sorted(tmp_path.glob("stable/*/step*/checkpoint.pt")) + sorted(tmp_path.glob("runs/*/metrics.json"))
    assert len(files) == len(branched) + len(result.runs)
    before = {p: p.stat().st_mtime_ns for p in files}
    call()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


def test_a_run_planned_now_shares_the_stable_run_of_the_same_size_read_back_from_the_table(tmp_path):
    """Adaptive placement plans each budget against a table read back from disk: a fresh row and a
    written one must have one stable identity, whatever digits their lr has (this lr rounded to 9
    digits differed between the two, and the last budget's runs trained from scratch)."""
    from flops_fit.io import write_tsv

    table, _ = plan("none")
    table["lr"] = 0.008283562585438366
    path = tmp_path / "runs.tsv"
    write_tsv(table, path)
    back = planning.read_runs_table(path)
    fresh, written = table.iloc[0].to_dict(), planning.run_row(back, table["run_id"].iloc[0])
    assert planning.stable_identity(fresh) == planning.stable_identity(written)
    assert planning.stable_id(fresh) == planning.stable_id(written)
    # a budget planned after the others were written branches off their stable runs, as in memory
    branched, rec = plan("branches")
    branched["lr"] = 0.008283562585438366
    branched[["branch_of", "branch_step"]] = ["", 0]
    top = branched["budget"] == max(BUDGETS)
    in_memory = assign_branches(branched, set(branched["run_id"]), rec, list(BUDGETS))
    write_tsv(in_memory[~top], path)
    mixed = pd.concat([planning.read_runs_table(path), branched[top]], ignore_index=True)
    mixed = assign_branches(mixed, set(branched.loc[top, "run_id"]), rec, list(BUDGETS))
    expected = in_memory[top].set_index("run_id")["branch_of"]
    assert (expected != "").any()
    assert mixed[mixed["budget"] == max(BUDGETS)].set_index("run_id")["branch_of"].equals(expected)
