rule prepare_dataset:
    output:
        "results/data/{dataset}.h5",
    log:
        "results/logs/data/{dataset}.log",
    conda:
        "../../environment.yml"
    params:
        options=lambda w: json.dumps(STUDY.data_options(w.dataset), sort_keys=True),
    shell:
        "imgzoo prepare --dataset {wildcards.dataset} --options {params.options:q}"
        " --out {output} > {log} 2>&1"
