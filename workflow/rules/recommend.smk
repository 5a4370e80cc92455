# The decision: the size-knob value, tokens and steps to train at each target budget.


rule recommend:
    input:
        config="results/validated.json",
        fit="results/fit/fit.json",
        runs="results/plan/runs.tsv",
    output:
        report(
            "results/fit/recommendations.tsv",
            caption="../report/recommendations.rst",
            category="1. Summary",
            labels={"table": "recommendations (TSV)"},
        ),
    log:
        "logs/recommend.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/recommend.py"

