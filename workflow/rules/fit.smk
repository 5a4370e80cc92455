rule fit:
    input:
        runs="results/plan/runs.tsv",
        metrics=all_metrics,
    output:
        fit="results/fit/fit.json",
        summary="results/fit/summary.tsv",
        table="results/fit/runs_results.tsv",
    log:
        "logs/fit.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    params:
        fit=config["fit"],
        target_budgets=config["target_budgets"],
    script:
        "../scripts/fit.py"
