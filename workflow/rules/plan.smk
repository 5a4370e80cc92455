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
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/calibration_plan.py --config {input}'
        " --runs {output.runs} --cost {output.cost} --log-file {log}"


rule calibrate:
    input:
        config=RESULTS.validated,
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
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/calibrate.py --config {input.config}'
        " --runs {input.runs} --runs-dir {params.runs_dir} --law {output.law} --log-file {log}"


checkpoint place:
    input:
        unpack(wave_inputs),
    output:
        runs=RESULTS.wave("{wave}"),
        # the runs it added, the FLOPs placed so far and (sweep.precision) the decision behind it
        design=RESULTS.wave_design("{wave}"),
    params:
        runs_dir=RESULTS.runs_dir,
        previous=previous_flag,
        designs=designs_flag,
    log:
        "logs/plan/wave{wave}.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/place.py --config {input.config}'
        " --wave {wildcards.wave} --lr {input.lr} {params.previous} {params.designs} --runs-dir {params.runs_dir}"
        " --runs {output.runs} --design {output.design} --log-file {log}"


rule plan:
    input:
        config=RESULTS.validated,
        wave=last_wave,
        designs=wave_designs,
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
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/plan.py --config {input.config}'
        " --wave {input.wave} --designs {input.designs} --runs-dir {params.runs_dir} --runs {output.runs}"
        " --design {output.design} --log-file {log}"
