# One training run. With launcher: local it runs in this job's process; with launcher: submitit
# this job only submits the run to SLURM and waits (light, no torch). `resources` mirror the
# experiment's SLURM resources so that `--executor slurm` works too.


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
    params:
        spec=run_spec,
        slurm=slurm_settings,
        launcher=STUDY.config["launcher"],
        outdir=lambda w, output: os.path.dirname(output.metrics),
        compile_cache=LAYOUT.compile_cache,
    shell:
        "imgzoo train --experiment {wildcards.experiment:q} --dataset {wildcards.dataset}"
        " --seed {wildcards.seed} --data {input.data:q} --out {params.outdir:q}"
        " --threads {threads} --launcher {params.launcher} --spec {params.spec:q}"
        " --slurm {params.slurm:q} --compile-cache {params.compile_cache:q} 2>&1 | tee {log:q}"
