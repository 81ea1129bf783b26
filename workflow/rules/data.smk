# Prepare a dataset once per study: its source read, split, written as one HDF5 file.


rule prepare_dataset:
    output:
        LAYOUT.data(),
    log:
        LAYOUT.log("data", "{dataset}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    # Decoding an image folder uses this many cores (fewer where Snakemake has fewer).
    threads: 8
    params:
        options=lambda w: json.dumps(STUDY.data_options(w.dataset), sort_keys=True),
    # The output goes to Snakemake's own too: a damaged image is named where the user looks.
    shell:
        "imgzoo prepare --dataset {wildcards.dataset} --options {params.options:q}"
        " --out {output:q} --workers {threads} 2>&1 | tee {log:q}"
