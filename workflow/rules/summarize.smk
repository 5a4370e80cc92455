# One page with the recommendations, the fit with intervals, every warning and every run's outcome.
rule summarize:
    input:
        config=RESULTS.validated,
        fit=RESULTS.fit,
        recommendations=RESULTS.recommendations,
        runs=RESULTS.runs_table,
        calibration=RESULTS.calibration_law,
        metrics=all_metrics,
    output:
        page=report(
            RESULTS.summary_page,
            caption="../report/summary.rst",
            category="1. Summary",
            labels={"table": "summary page"},
        ),
        runs=report(
            RESULTS.report_runs,
            caption="../report/runs.rst",
            category="1. Summary",
            labels={"table": "runs (TSV)"},
        ),
    params:
        runs_dir=RESULTS.runs_dir,
    log:
        "logs/summarize.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/summarize.py --config {input.config} --fit {input.fit}'
        " --recommendations {input.recommendations} --runs {input.runs} --runs-dir {params.runs_dir}"
        " --calibration {input.calibration} --page {output.page} --table {output.runs} --log-file {log}"
