rule validate:
    output:
        RESULTS.validated,
    log:
        "logs/validate.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    params:
        config=sweep_config(),
    script:
        "../scripts/validate.py"
