checkpoint plan:
    input:
        "results/validated.json",
    output:
        runs="results/plan/runs.tsv",
    log:
        "logs/plan.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/plan.py"
