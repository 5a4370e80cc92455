rule fit:
    input:
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
    script:
        "../scripts/fit.py"
