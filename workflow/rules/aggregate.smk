# Aggregation reads run logs only (never the models): tables, curves, weight grids, sweeps.


rule tables:
    input:
        run_logs(),
    output:
        runs_csv="results/tables/runs.csv",
        runs_md="results/tables/runs.md",
        runs_html=report(
            "results/tables/runs.html",
            caption="../report/runs.rst",
            category="Tables",
        ),
        summary_csv="results/tables/summary.csv",
        summary_md="results/tables/summary.md",
        summary_html=report(
            "results/tables/summary.html",
            caption="../report/summary.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate/tables.log",
    conda:
        "../../environment.yml"
    shell:
        "imgzoo tables --out-dir results/tables {input:q} > {log} 2>&1"


rule reproduction:
    input:
        run_logs(),
    output:
        csv="results/tables/reproduction.csv",
        md="results/tables/reproduction.md",
        html=report(
            "results/tables/reproduction.html",
            caption="../report/reproduction.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate/reproduction.log",
    conda:
        "../../environment.yml"
    params:
        published=published_json(),
    shell:
        "imgzoo reproduction --published {params.published:q} --out-dir results/tables"
        " {input:q} > {log} 2>&1"


rule comparisons:
    input:
        run_logs(),
    output:
        csv="results/tables/comparisons.csv",
        md="results/tables/comparisons.md",
        html=report(
            "results/tables/comparisons.html",
            caption="../report/comparisons.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate/comparisons.log",
    conda:
        "../../environment.yml"
    params:
        pairs=comparisons_json(),
    shell:
        "imgzoo compare --pairs {params.pairs:q} --out-dir results/tables {input:q} > {log} 2>&1"


# The front page (workflow/report/workflow.rst) includes headline.rst beside headline.html.
rule headline:
    input:
        run_logs(),
    output:
        csv="results/tables/headline.csv",
        md="results/tables/headline.md",
        rst="results/tables/headline.rst",
        html=report(
            "results/tables/headline.html",
            caption="../report/headline.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate/headline.log",
    conda:
        "../../environment.yml"
    params:
        published=published_json(),
    shell:
        "imgzoo headline --published {params.published:q} --out-dir results/tables"
        " {input:q} > {log} 2>&1"


rule curves:
    input:
        lambda w: run_logs(w.dataset),
    output:
        report(
            "results/figures/{dataset}/curves.png",
            caption="../report/curves.rst",
            category="Learning curves",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/aggregate/curves-{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "imgzoo curves --title {wildcards.dataset} --out {output} {input:q} > {log} 2>&1"


rule weight_grid:
    input:
        "results/runs/{dataset}/{experiment}/seed{seed}/metrics.h5",
    output:
        report(
            "results/figures/{dataset}/{experiment}/seed{seed}/first_layer.png",
            caption="../report/weights.rst",
            category="First-layer weights",
            subcategory="{dataset}",
            labels={"experiment": "{experiment}", "seed": "{seed}"},
        ),
    log:
        "results/logs/aggregate/weights-{dataset}-{experiment}-seed{seed}.log",
    conda:
        "../../environment.yml"
    shell:
        "imgzoo weights --out {output:q} {input:q} > {log:q} 2>&1"


rule sweep_plot:
    input:
        sweep_logs,
    output:
        report(
            "results/figures/{dataset}/sweep-{sweep}.png",
            caption="../report/sweep.rst",
            category="Sweeps",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/aggregate/sweep-{dataset}-{sweep}.log",
    conda:
        "../../environment.yml"
    params:
        metric=lambda w: STUDY.sweeps[w.sweep]["metric"],
    shell:
        "imgzoo sweep-plot --sweep {wildcards.sweep:q} --metric {params.metric}"
        " --out {output:q} {input:q} > {log:q} 2>&1"
