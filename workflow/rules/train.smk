rule train:
    input:
        # ancient(): a rewritten plan or config must not retrain finished runs; per-run changes are
        # caught by the params rerun trigger instead (params.run is this run's identity).
        config=ancient(RESULTS.validated),
        runs=run_table_file,
    output:
        metrics=RESULTS.metrics("{run_id}"),
        curve=RESULTS.curve("{run_id}"),
    log:
        "logs/train/{run_id}.log",
    conda:
        "../envs/flops_fit.yaml"
    threads: config["training"]["processes_per_run"]
    resources:
        gpu=train_gpus,
        runtime=train_runtime,
    params:
        run=run_plan,
        training=config["training"],
        checkpoint_dir=checkpoint_dir,
        launcher=train_launcher,
    shell:
        "{params.launcher} train --config {input.config} --runs {input.runs} --run-id {wildcards.run_id}"
        " --out-dir $(dirname {output.metrics}) --checkpoint-dir {params.checkpoint_dir}"
        " --threads {threads} --log-file {log}"
