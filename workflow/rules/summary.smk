# One page with the recommendations, the fit with intervals, every warning and every run's outcome.
rule summarize:
    input:
        fit="results/fit/fit.json",
        recommendations="results/fit/recommendations.tsv",
        runs="results/plan/runs.tsv",
        calibration="results/plan/lr_calibration.json",
        metrics=all_metrics,
    output:
        page=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="1. Summary",
            labels={"table": "summary page"},
        ),
        runs=report(
            "results/report/runs.tsv",
            caption="../report/runs.rst",
            category="1. Summary",
            labels={"table": "runs (TSV)"},
        ),
    log:
        "logs/summarize.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/summarize.py"
