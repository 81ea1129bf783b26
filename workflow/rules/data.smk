rule prepare_dataset:
    output:
        LAYOUT.data(),
    log:
        LAYOUT.log("data", "{dataset}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        options=lambda w: json.dumps(STUDY.data_options(w.dataset), sort_keys=True),
    shell:
        "imgzoo prepare --dataset {wildcards.dataset} --options {params.options:q}"
        " --out {output:q} > {log:q} 2>&1"
