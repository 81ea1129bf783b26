# One training run. Run locally (`snakemake --cores N`), the shell command trains in this job's
# process. Under `--executor imgzoo` (profiles/slurm) the shell command is not run: the executor
# submits the run as a SLURM job with submitit, from the wildcards, params, input and resources.
# The params are what decides the run's numbers (its settings: changing one re-runs the run);
# what its job asks SLURM for are resources, which re-run nothing (imgzoo.spec).


rule train:
    input:
        data=LAYOUT.data(),
        model_sources=model_sources,
    output:
        metrics=LAYOUT.run_log(),
    log:
        LAYOUT.train_log(),
    conda:
        "../../environment.yml"
    threads: 1
    # Named as snakemake-executor-plugin-slurm names them; unset ones (None) are left out.
    resources:
        slurm_partition=run_resource("slurm_partition"),
        slurm_account=run_resource("slurm_account"),
        qos=run_resource("qos"),
        constraint=run_resource("constraint"),
        gpu=run_resource("gpu"),
        cpus_per_task=run_resource("cpus_per_task"),
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
        slurm_extra=run_resource("slurm_extra"),
        # How runs share a SLURM job and how its jobs are handled (the imgzoo executor).
        pack=run_resource("pack"),
        gpu_mem_fraction=run_resource("gpu_mem_fraction"),
        max_requeues=run_resource("max_requeues"),
        slurm_logs=run_resource("slurm_logs"),
    params:
        settings=run_settings,
        study=STUDY.name,
        outdir=lambda w, output: os.path.dirname(output.metrics),
        compile_cache=LAYOUT.compile_cache,
    shell:
        "imgzoo train --study {params.study:q} --experiment {wildcards.experiment:q}"
        " --dataset {wildcards.dataset} --seed {wildcards.seed} --settings {params.settings:q}"
        " --data {input.data:q} --out {params.outdir:q} --threads {threads}"
        " --compile-cache {params.compile_cache:q} 2>&1 | tee {log:q}"
