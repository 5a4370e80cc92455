rule validate:
    output:
        RESULTS.validated,
    log:
        "logs/validate.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    params:
        # JSON: it travels on the script's command line
        config=json.dumps(sweep_config()),
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/validate.py --config {params.config:q}'
        " --out {output} --log-file {log}"
