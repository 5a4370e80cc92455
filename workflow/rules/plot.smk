# Figures: PNG in the report (category "2. Figures"), SVG next to it for papers.
rule plot:
    input:
        fit=RESULTS.fit,
        table=RESULTS.fitted_runs,
        runs=RESULTS.runs_table,
    output:
        isoflops=report(
            RESULTS.plot("isoflops"),
            caption="../report/isoflops.rst",
            category="2. Figures",
            labels={"figure": "isoFLOP profiles", "approach": "2"},
        ),
        optima=report(
            RESULTS.plot("optima"),
            caption="../report/optima.rst",
            category="2. Figures",
            labels={"figure": "N* and D* against C", "approach": "2"},
        ),
        frontier=report(
            RESULTS.plot("frontier"),
            caption="../report/frontier.rst",
            category="2. Figures",
            labels={"figure": "N* and D* against C", "approach": "3"},
        ),
        contours=report(
            RESULTS.plot("contours"),
            caption="../report/contours.rst",
            category="2. Figures",
            labels={"figure": "L(N, D) contours", "approach": "3"},
        ),
        residuals=report(
            RESULTS.plot("residuals"),
            caption="../report/residuals.rst",
            category="2. Figures",
            labels={"figure": "residuals", "approach": "3"},
        ),
        ratio_fan=report(
            RESULTS.plot("ratio_fan"),
            caption="../report/ratio_fan.rst",
            category="2. Figures",
            labels={"figure": "tokens per parameter", "approach": "3"},
        ),
        loss_curves=report(
            RESULTS.plot("loss_curves"),
            caption="../report/loss_curves.rst",
            category="2. Figures",
            labels={"figure": "loss curves", "approach": "runs"},
        ),
        svg=expand(
            str(RESULTS.plot("{figure}", "svg")),
            figure=[
                "isoflops",
                "optima",
                "frontier",
                "contours",
                "residuals",
                "ratio_fan",
                "loss_curves",
            ],
        ),
    params:
        runs_dir=RESULTS.runs_dir,
    log:
        "logs/plot.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    shell:
        'python -m flops_fit script "$FLOPS_FIT_SCRIPTS"/plot.py --fit {input.fit} --table {input.table}'
        " --runs {input.runs} --runs-dir {params.runs_dir} --out-dir $(dirname {output.isoflops})"
        " --log-file {log}"
