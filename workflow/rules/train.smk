# One training run. Run locally (`snakemake --cores N`), the shell command trains in this job's
# process. Under `--executor imgzoo` (profiles/slurm) the shell command is not run: the executor
# submits the run as a SLURM job with submitit, from the params and input below.


rule train:
    input:
        data=LAYOUT.data(),
    output:
        metrics=LAYOUT.run_log(),
    log:
        LAYOUT.log("train", "{dataset}", "{experiment}", "seed{seed}.log"),
    conda:
        "../../environment.yml"
    threads: 1
    # Names of snakemake-executor-plugin-slurm; unset ones (None) are left out.
    resources:
        slurm_partition=lambda w: run_resources(w, "partition"),
        slurm_account=lambda w: run_resources(w, "account"),
        qos=lambda w: run_resources(w, "qos"),
        constraint=lambda w: run_resources(w, "constraint"),
        gpu=lambda w: run_resources(w, "gpus") or None,
        cpus_per_task=lambda w: run_resources(w, "cpus"),
        mem_mb=lambda w: int(run_resources(w, "mem_gb") * 1024),
        runtime=lambda w: run_resources(w, "time_min"),
        slurm_extra=slurm_extra,
        # How runs share a SLURM job (the imgzoo executor). Resources, not params: changing them
        # re-runs nothing. The share is a string: Snakemake rounds numbers to integers.
        pack=lambda w: run_resources(w, "pack"),
        gpu_mem_fraction=gpu_mem_fraction,
    params:
        spec=run_spec,
        outdir=lambda w, output: os.path.dirname(output.metrics),
        compile_cache=LAYOUT.compile_cache,
        slurm_logs=slurm_log_folder,
        max_requeues=STUDY.config["slurm"]["max_requeues"],
    shell:
        "imgzoo train --experiment {wildcards.experiment:q} --dataset {wildcards.dataset}"
        " --seed {wildcards.seed} --data {input.data:q} --out {params.outdir:q}"
        " --threads {threads} --spec {params.spec:q}"
        " --compile-cache {params.compile_cache:q} 2>&1 | tee {log:q}"
