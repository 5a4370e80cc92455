rule fit:
    input:
        config=RESULTS.validated,
        runs=RESULTS.runs_table,
        metrics=all_metrics,
        # the waves' decisions (sweep.precision), for fit.json's design record
        design=RESULTS.design,
    output:
        fit=RESULTS.fit,
        summary=RESULTS.fit_summary,
        table=RESULTS.fitted_runs,
    log:
        "logs/fit.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    params:
        runs_dir=RESULTS.runs_dir,
        fit=config["fit"],
        target_budgets=config["target_budgets"],
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/fit.py --config {input.config}'
        " --runs {input.runs} --runs-dir {params.runs_dir} --fit {output.fit} --summary {output.summary}"
        " --table {output.table} --design {input.design} --log-file {log}"
