"""After a real (tiny) sweep: the recommendation, the summary page and `snakemake --report`, rendered in
headless Chromium to check that a reader sees the plots and the numbers, not a blank page.

The session's one `.test` sweep (conftest) through the real snakemake CLI.
"""

from __future__ import annotations

import dataclasses

import html
import json
import math
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import yaml

from fitting_support import synthetic_sweep
from flops_fit.examples.gpt import GPT
from flops_fit.fitting import fit_table
from flops_fit.plotting.suite import FIGURES
from flops_fit.knob import ParamCounter
from flops_fit.recommend import COLUMNS, lines, read_recommendations
from flops_fit.report_page import summary_page
from workflow_support import ROOT, snakemake

CHROMIUM = shutil.which("chromium")
#: as root, on a closed network, Chromium stalls without these (issue 7)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000", "--window-size=1400,1000"]
#: after the report's app has loaded, show one result as a click on it would
SHOW_RESULT = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const key = Object.keys(results).find(k => k.endsWith(%r));
  app.setView({content: %r, contentPath: results[key].data_uri, resultPath: key});
}, 300));
</script>"""


@pytest.fixture
def sweep(test_sweep_run) -> tuple[Path, str]:
    """The session's `.test` sweep (conftest) and its console output."""
    workdir, result = test_sweep_run
    return workdir, result.stderr


@pytest.fixture(scope="session")
def report(test_sweep_run) -> Path:
    workdir, _ = test_sweep_run
    result = snakemake(workdir, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir / "results/report.html"


def test_the_recommendation_is_written_and_printed_at_the_end(sweep):
    workdir, console = sweep
    rec = read_recommendations(workdir / "results/fit/recommendations.tsv")
    assert list(rec["C"]) == [1e11]
    row = rec.iloc[0]
    kwargs = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())["model"]["kwargs"]
    count = ParamCounter(GPT, "d_model", kwargs)
    legal = [d for d in range(1, 4 * int(row["size"])) if count(d) is not None]
    best = min(legal, key=lambda d: abs(math.log(count(d) / row["N_star"])))
    assert row["size"] == best and row["N"] == count(best)
    assert row["N_star_lo"] < row["N_star"] < row["N_star_hi"]
    assert row["D"] == pytest.approx(row["C"] / row["flops_per_token"])
    assert row["steps"] == 60 and abs(row["tokens"] / row["D"] - 1) < 0.01
    assert console.index(f"flops-fit: {lines(rec)[0]}") > console.rindex("(Rule: all)")  # onsuccess: the last word


def test_the_summary_page_holds_the_decision_every_warning_and_every_run(sweep):
    workdir, _ = sweep
    page = (workdir / "results/report/summary.html").read_text()
    fit = json.loads((workdir / "results/fit/fit.json").read_text())
    rec = read_recommendations(workdir / "results/fit/recommendations.tsv")
    assert html.escape(lines(rec)[0]) in page
    for warning in fit["warnings"]:
        assert html.escape(warning) in page
    runs = pd.read_csv(workdir / "results/report/runs.tsv", sep="\t")
    assert len(runs) == 8 and set(runs["status"]) == {"ok"} and runs["eval_loss"].gt(0).all()
    assert all(f"<td>{run_id}</td>" in page for run_id in runs["run_id"])
    assert "Fit summary (95% bootstrap intervals, 50 resamples)" in page and "<script" not in page
    assert "learning rate calibrated at the smallest budget: lr*(N) = " in page  # the recipe, as measured


def test_the_report_is_one_file_with_every_item(report):
    text = report.read_text()
    for name in FIGURES:
        assert f"results/plots/{name}.png" in text
    for item in ("results/report/summary.html", "results/fit/recommendations.tsv", "results/report/runs.tsv"):
        assert item in text
    assert text.count("data:image/png;") >= len(FIGURES)
    assert "1. Summary" in text and "2. Figures" in text


def screenshot(page: Path, out: Path) -> np.ndarray:
    """The page as Chromium draws it, RGB in [0, 1], without the report's sidebar (left quarter)."""
    profile = out.parent / f"{out.stem}-profile"
    profile.mkdir()
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                             page.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.exists(), result.stderr[-3000:]
    image = matplotlib.image.imread(out)[..., :3]
    return image[:, image.shape[1] // 4:]


def with_result_shown(report: Path, suffix: str, kind: str, out: Path) -> Path:
    head, _, tail = report.read_text().rpartition("</body>")  # the last one: the scripts contain the string too
    out.write_text(head + SHOW_RESULT % (suffix, kind) + "</body>" + tail)
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install chromium)")
def test_the_report_renders_with_its_plots_in_headless_chromium(report, tmp_path):
    landing = screenshot(report, tmp_path / "landing.png")
    assert (landing.min(axis=2) < 0.9).mean() > 0.01, "the report's front page is blank"
    plot = screenshot(with_result_shown(report, "isoflops.png", "img", tmp_path / "plot.html"), tmp_path / "plot.png")
    colourful = ((plot.max(axis=2) - plot.min(axis=2)) > 0.25).mean()
    assert colourful > 0.002, f"the isoFLOP plot is not on screen ({colourful:.4f} of pixels in colour)"
    page = screenshot(with_result_shown(report, "summary.html", "html", tmp_path / "page.html"), tmp_path / "page.png")
    assert (page.min(axis=2) < 0.9).mean() > 0.05, "the summary page is blank"


def test_without_target_budgets_the_page_says_how_to_get_a_recommendation():
    fit = fit_table(synthetic_sweep(seed=1, budgets=(1e18, 1e19, 1e20), sizes=5), bootstrap=0)
    fit = dataclasses.replace(fit, warnings=(*fit.warnings, "diverged <run> & more"))
    page = summary_page(fit, pd.DataFrame(columns=COLUMNS), pd.DataFrame({"run_id": ["r1"], "status": ["ok"]}))
    assert "no target_budgets configured" in page and "diverged &lt;run&gt; &amp; more" in page
    assert "<td>r1</td>" in page and "None" not in page
