"""Does a refactor change the answer? Re-plan and refit a finished sweep with this checkout's code.

Given a results folder written by an earlier version (``results/`` of `make run`), it rebuilds every
plan table from that sweep's own finished runs (the lr-calibration table, the lr law, each
placement wave) and refits the laws, then compares each with the file on disk: a refactor that keeps
behaviour reproduces all of them. No training: the runs' metrics are read, so it takes seconds.

    python bench/same_numbers.py results
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from flops_fit import pipeline, planning
from flops_fit.config import prepare_config
from flops_fit.paths import Results
from flops_fit.validation import build_objects


def same_table(new: pd.DataFrame, path: Path) -> None:
    pd.testing.assert_frame_equal(new.reset_index(drop=True), planning.read_runs_table(path), check_dtype=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a finished sweep's results folder")
    old = Results(parser.parse_args().results)

    config = prepare_config(pipeline.read_validated(old.validated))  # defaults of keys added since
    ctx = pipeline.plan_context(config, *build_objects(config)[:3])
    calibration, _ = pipeline.calibration_plan(config, ctx)
    same_table(calibration, old.calibration_plan)
    on_disk = planning.read_runs_table(old.calibration_plan)  # the workflow fits the law from the TSV
    law = pipeline.calibrate(config, on_disk, pipeline.read_losses(on_disk, old.runs_dir))
    old_law = json.loads(old.calibration_law.read_text())
    assert all(math.isclose(law[k], old_law[k], rel_tol=1e-12) for k in ("coefficient", "exponent")), (law, old_law)

    table, waves = planning.as_table([]), 0
    while old.wave(waves).exists():
        table, _, _ = pipeline.place_wave(config, ctx, law, table, pipeline.read_losses(table, old.runs_dir), waves)
        same_table(table, old.wave(waves))
        waves += 1

    fit, fitted = pipeline.fit_runs(config, planning.read_runs_table(old.runs_table), old.runs_dir)
    new, before = fit.to_dict(), json.loads(old.fit.read_text())
    added = sorted(set(new) - set(before))  # keys fit.json gained since (reported, not compared)
    assert {k: v for k, v in new.items() if k not in added} == before, "fit.json differs"
    pd.testing.assert_frame_equal(fitted, pd.read_csv(old.fitted_runs, sep="\t"), check_dtype=False)
    print(f"identical: lr-calibration plan ({len(calibration)} runs) and law, {waves} wave tables "
          f"({len(table)} runs), fit.json and the fitted table ({fit.n_runs} runs)"
          + (f"; fit.json keys added since: {', '.join(added)}" if added else ""))


if __name__ == "__main__":
    main()
