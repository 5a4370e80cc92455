# Planning in waves (flops_fit.placement, flops_fit.calibration): a short lr calibration at the
# smallest budget, then the budgets in ascending order, each window placed from the finished runs
# below it and extended while its minimum is not bracketed. Every wave is a checkpoint whose table
# is cumulative; `plan` copies the last one to results/plan/runs.tsv for the fit and the report.


checkpoint calibration_plan:
    input:
        "results/validated.json",
    output:
        runs="results/plan/lr_calibration.tsv",
    log:
        "logs/plan/calibration_plan.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/calibration_plan.py"


rule calibrate:
    input:
        runs="results/plan/lr_calibration.tsv",
        metrics=calibration_metrics,
    output:
        law=report(
            "results/plan/lr_calibration.json",
            caption="../report/lr_calibration.rst",
            category="3. Recipe",
            labels={"table": "lr calibration (JSON)"},
        ),
    params:
        runs_dir="results/runs",
    log:
        "logs/plan/calibrate.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/calibrate.py"


checkpoint place:
    input:
        unpack(wave_inputs),
    output:
        runs="results/plan/waves/{wave}.tsv",
    params:
        runs_dir="results/runs",
    log:
        "logs/plan/wave{wave}.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/place.py"


rule plan:
    input:
        unpack(last_wave),
    output:
        runs="results/plan/runs.tsv",
    params:
        runs_dir="results/runs",
    log:
        "logs/plan/plan.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/plan.py"
