# Figures: PNG in the report (category "2. Figures"), SVG next to it for papers.
rule plot:
    input:
        fit="results/fit/fit.json",
        table="results/fit/runs_results.tsv",
        runs="results/plan/runs.tsv",
    output:
        isoflops=report(
            "results/plots/isoflops.png",
            caption="../report/isoflops.rst",
            category="2. Figures",
            labels={"figure": "isoFLOP profiles", "approach": "2"},
        ),
        optima=report(
            "results/plots/optima.png",
            caption="../report/optima.rst",
            category="2. Figures",
            labels={"figure": "N* and D* against C", "approach": "2"},
        ),
        frontier=report(
            "results/plots/frontier.png",
            caption="../report/frontier.rst",
            category="2. Figures",
            labels={"figure": "N* and D* against C", "approach": "3"},
        ),
        contours=report(
            "results/plots/contours.png",
            caption="../report/contours.rst",
            category="2. Figures",
            labels={"figure": "L(N, D) contours", "approach": "3"},
        ),
        residuals=report(
            "results/plots/residuals.png",
            caption="../report/residuals.rst",
            category="2. Figures",
            labels={"figure": "residuals", "approach": "3"},
        ),
        ratio_fan=report(
            "results/plots/ratio_fan.png",
            caption="../report/ratio_fan.rst",
            category="2. Figures",
            labels={"figure": "tokens per parameter", "approach": "3"},
        ),
        loss_curves=report(
            "results/plots/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="2. Figures",
            labels={"figure": "loss curves", "approach": "runs"},
        ),
        svg=expand(
            "results/plots/{figure}.svg",
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
    log:
        "logs/plot.log",
    localrule: True
    conda:
        "../envs/flops_fit.yaml"
    script:
        "../scripts/plot.py"
