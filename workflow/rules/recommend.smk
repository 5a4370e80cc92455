# The decision: the size-knob value, tokens and steps to train at each target budget.


rule recommend:
    input:
        config=RESULTS.validated,
        fit=RESULTS.fit,
        runs=RESULTS.runs_table,
    output:
        report(
            RESULTS.recommendations,
            caption="../report/recommendations.rst",
            category="1. Summary",
            labels={"table": "recommendations (TSV)"},
        ),
    log:
        "logs/recommend.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/recommend.py --config {input.config}'
        " --fit {input.fit} --runs {input.runs} --out {output} --log-file {log}"

