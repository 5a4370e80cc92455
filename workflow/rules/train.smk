rule train:
    input:
        # sweep.reuse: branches: a cooldown run starts from its stable run's branch checkpoint
        unpack(branch_input),
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
    # torch's threads of the run (training.threads, shared by its processes; default one per process):
    # execution, not identity, so it is no rerun trigger (the threads directive never is)
    threads: train_threads
    resources:
        gpu=train_gpus,
        runtime=train_runtime,
    params:
        run=run_plan,
        training=training_identity(config["training"]),
        checkpoint_dir=checkpoint_dir,
        launcher=train_launcher,
        branch=branch_flag,
    shell:
        "{params.launcher} train --config {input.config} --runs {input.runs} --run-id {wildcards.run_id}"
        " --out-dir $(dirname {output.metrics}) --checkpoint-dir {params.checkpoint_dir}"
        " --threads {threads} --log-file {log} {params.branch}"


# sweep.reuse: branches: one segment of a shared stable (constant-lr) run, from its previous branch
# checkpoint (or step 0) to the next branch point; cooldown runs (train) start from its output.
rule stable:
    input:
        unpack(stable_inputs),
    output:
        checkpoint=RESULTS.branch_checkpoint("{stable_id}", "{step}"),
    log:
        "logs/stable/{stable_id}_step{step}.log",
    conda:
        "../envs/flops_fit.yaml"
    threads: stable_threads
    resources:
        gpu=stable_gpus,
        runtime=stable_runtime,
    params:
        segment=stable_plan,
        training=training_identity(config["training"]),
        start=stable_start_flag,
        checkpoint_dir=lambda wildcards: RESULTS.segment_checkpoint_dir(wildcards.stable_id, wildcards.step),
    shell:
        "python -m flops_fit stable --config {input.config} --runs {input.runs} --stable-id {wildcards.stable_id}"
        " --step {wildcards.step} {params.start} --out-dir $(dirname {output.checkpoint})"
        " --checkpoint-dir {params.checkpoint_dir} --threads {threads} --log-file {log}"
