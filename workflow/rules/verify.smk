# Prove the prediction (flops_fit.verify): train the recommended size and its neighbours (verify.sizes:
# N*/2, N*, 2N*) at verify.budgets with the sweep's recipe, compare their losses with the law's and say
# whether the recommended size is the observed optimum. Not part of `all`: `snakemake verify` asks for
# it. Each run is an ordinary planned run (role `verify`) in its own table, trained by the train rule
# (run_source finds its row), and never in results/plan/runs.tsv, so it never enters the fit. A changed
# verify.sizes re-plans (params) but keeps every run whose identity is unchanged: runs are only added.
from flops_fit.verify import verify_budgets, verify_sizes


checkpoint verify_plan:
    input:
        config=RESULTS.validated,
        fit=RESULTS.fit,
        recommendations=RESULTS.recommendations,
        lr=RESULTS.calibration_law,
    output:
        runs=RESULTS.verify_plan,
    params:
        budgets=verify_budgets(config),
        sizes=verify_sizes(config),
    log:
        "logs/verify/plan.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/verify_plan.py --config {input.config}'
        " --budgets {params.budgets} --sizes {params.sizes} --fit {input.fit}"
        " --recommendations {input.recommendations} --lr {input.lr} --runs {output.runs} --log-file {log}"


rule verify:
    input:
        fit=RESULTS.fit,
        recommendations=RESULTS.recommendations,
        runs=RESULTS.verify_plan,
        metrics=verify_metrics,
    output:
        table=report(
            RESULTS.verify_table,
            caption="../report/verify.rst",
            category="1. Summary",
            labels={"table": "verification (TSV)"},
        ),
        page=report(
            RESULTS.verify_page,
            caption="../report/verify.rst",
            category="1. Summary",
            labels={"table": "verification page"},
        ),
    params:
        budgets=verify_budgets(config),
        runs_dir=RESULTS.runs_dir,
    log:
        "logs/verify/verify.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/verify.py --fit {input.fit}'
        " --recommendations {input.recommendations} --runs {input.runs} --runs-dir {params.runs_dir}"
        " --budgets {params.budgets} --table {output.table} --page {output.page} --log-file {log}"
