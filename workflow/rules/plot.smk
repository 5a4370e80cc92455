rule plot:
    input:
        fit="results/fit/fit.json",
        table="results/fit/runs_results.tsv",
        runs="results/plan/runs.tsv",
    output:
        isoflops="results/plots/isoflops.png",
        optima="results/plots/optima.png",
        curves="results/plots/loss_curves.png",
    log:
        "logs/plot.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/plot.py"
