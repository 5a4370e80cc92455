# Planning in waves (flops_fit.placement, flops_fit.calibration): a short lr calibration at the
# smallest budget, then the budgets in ascending order, each window placed from the finished runs
# below it and extended while its minimum is not bracketed; with sweep.precision, further waves are
# chosen for the interval asked for (flops_fit.design). Every wave is a checkpoint whose table is
# cumulative; the first wave that places nothing is the last, and `plan` copies it to
# results/plan/runs.tsv for the fit and the report.


checkpoint calibration_plan:
    input:
        RESULTS.validated,
    output:
        runs=RESULTS.calibration_plan,
        # the sweep's planned FLOPs, measured FLOPs/s and expected wall time, before any run trains
        cost=RESULTS.cost_estimate,
    log:
        "logs/plan/calibration_plan.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/calibration_plan.py"


rule calibrate:
    input:
        runs=RESULTS.calibration_plan,
        metrics=calibration_metrics,
    output:
        law=report(
            RESULTS.calibration_law,
            caption="../report/lr_calibration.rst",
            category="3. Recipe",
            labels={"table": "lr calibration (JSON)"},
        ),
    params:
        runs_dir=RESULTS.runs_dir,
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
        runs=RESULTS.wave("{wave}"),
        # the runs it added, the FLOPs placed so far and (sweep.precision) the decision behind it
        design=RESULTS.wave_design("{wave}"),
    params:
        runs_dir=RESULTS.runs_dir,
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
        runs=RESULTS.runs_table,
        design=RESULTS.design,
    params:
        runs_dir=RESULTS.runs_dir,
    log:
        "logs/plan/plan.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/plan.py"
