# Aggregation reads run logs only (never the models): tables, curves, weight grids, sweeps.
# `--same-as` names the runs that repeat another run's settings: they were trained once and are
# shown under each of their names.


rule tables:
    input:
        run_logs(),
    output:
        runs_csv=LAYOUT.table("runs", "csv"),
        runs_md=LAYOUT.table("runs", "md"),
        runs_html=report(
            LAYOUT.table("runs", "html"),
            caption="../report/runs.rst",
            category="Tables",
        ),
        summary_csv=LAYOUT.table("summary", "csv"),
        summary_md=LAYOUT.table("summary", "md"),
        summary_html=report(
            LAYOUT.table("summary", "html"),
            caption="../report/summary.rst",
            category="Tables",
        ),
    log:
        LAYOUT.log("aggregate", "tables.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.runs_csv),
        same_as=repeated_runs(),
        labels=run_labels(),
    shell:
        "imgzoo tables --out-dir {params.out_dir:q} --same-as {params.same_as:q} --labels {params.labels:q}"
        " {input:q} > {log:q} 2>&1"


rule reproduction:
    input:
        run_logs(),
    output:
        csv=LAYOUT.table("reproduction", "csv"),
        md=LAYOUT.table("reproduction", "md"),
        html=report(
            LAYOUT.table("reproduction", "html"),
            caption="../report/reproduction.rst",
            category="Tables",
        ),
    log:
        LAYOUT.log("aggregate", "reproduction.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        published=published_json(),
        same_as=repeated_runs(),
        labels=run_labels(),
    shell:
        "imgzoo reproduction --published {params.published:q} --out-dir {params.out_dir:q}"
        " --same-as {params.same_as:q} --labels {params.labels:q} {input:q} > {log:q} 2>&1"


rule comparisons:
    input:
        run_logs(),
    output:
        csv=LAYOUT.table("comparisons", "csv"),
        md=LAYOUT.table("comparisons", "md"),
        html=report(
            LAYOUT.table("comparisons", "html"),
            caption="../report/comparisons.rst",
            category="Tables",
        ),
    log:
        LAYOUT.log("aggregate", "comparisons.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        pairs=comparisons_json(),
        same_as=repeated_runs(),
        labels=run_labels(),
    shell:
        "imgzoo compare --pairs {params.pairs:q} --out-dir {params.out_dir:q}"
        " --same-as {params.same_as:q} --labels {params.labels:q} {input:q} > {log:q} 2>&1"


rule claims:
    input:
        run_logs(),
    output:
        csv=LAYOUT.table("claims", "csv"),
        md=LAYOUT.table("claims", "md"),
        html=report(
            LAYOUT.table("claims", "html"),
            caption="../report/claims.rst",
            category="Tables",
        ),
    log:
        LAYOUT.log("aggregate", "claims.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        claims=claims_json(),
        same_as=repeated_runs(),
        labels=run_labels(),
    shell:
        "imgzoo claims --claims {params.claims:q} --out-dir {params.out_dir:q}"
        " --same-as {params.same_as:q} --labels {params.labels:q} {input:q} > {log:q} 2>&1"


# The front page (workflow/report/workflow.rst) includes headline.rst beside headline.html:
# the headline in words, each dataset's accuracy figure (embedded) and links to what the
# workflow makes.
rule headline:
    input:
        logs=run_logs(),
        figures=accuracy_plots(),
    output:
        csv=LAYOUT.table("headline", "csv"),
        md=LAYOUT.table("headline", "md"),
        rst=LAYOUT.table("headline", "rst"),
        html=report(
            LAYOUT.table("headline", "html"),
            caption="../report/headline.rst",
            category="Tables",
        ),
    log:
        LAYOUT.log("aggregate", "headline.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        published=published_json(),
        same_as=repeated_runs(),
        labels=run_labels(),
        front_page=front_page_json(),
    shell:
        "imgzoo headline --published {params.published:q} --out-dir {params.out_dir:q}"
        " --same-as {params.same_as:q} --labels {params.labels:q}"
        " --front-page {params.front_page:q} {input.logs:q} > {log:q} 2>&1"


rule accuracy_plot:
    input:
        lambda w: run_logs(w.dataset),
    output:
        report(
            LAYOUT.accuracy_plot(),
            caption="../report/accuracy.rst",
            category="Accuracy",
            subcategory="{dataset}",
        ),
    log:
        LAYOUT.log("aggregate", "accuracy-{dataset}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        published=lambda w: published_json(w.dataset),
        same_as=lambda w: repeated_runs(w.dataset),
        labels=lambda w: run_labels(w.dataset),
    shell:
        "imgzoo accuracy-plot --published {params.published:q} --title {wildcards.dataset}"
        " --out {output:q} --same-as {params.same_as:q} --labels {params.labels:q}"
        " {input:q} > {log:q} 2>&1"


# sacct is asked here, on the login node, about every job id the logs name at once.
rule efficiency:
    input:
        run_logs(),
    output:
        csv=LAYOUT.table("efficiency", "csv"),
        md=LAYOUT.table("efficiency", "md"),
        html=report(
            LAYOUT.table("efficiency", "html"),
            caption="../report/efficiency.rst",
            category="Tables",
        ),
    log:
        LAYOUT.log("aggregate", "efficiency.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        labels=run_labels(),
    shell:
        "imgzoo efficiency --out-dir {params.out_dir:q} --labels {params.labels:q}"
        " {input:q} > {log:q} 2>&1"


rule curves:
    input:
        lambda w: run_logs(w.dataset),
    output:
        report(
            LAYOUT.curves(),
            caption="../report/curves.rst",
            category="Learning curves",
            subcategory="{dataset}",
        ),
    log:
        LAYOUT.log("aggregate", "curves-{dataset}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        same_as=lambda w: repeated_runs(w.dataset),
        labels=lambda w: run_labels(w.dataset),
    shell:
        "imgzoo curves --title {wildcards.dataset} --out {output:q}"
        " --same-as {params.same_as:q} --labels {params.labels:q} {input:q} > {log:q} 2>&1"


rule weight_grid:
    input:
        LAYOUT.run_log(),
    output:
        report(
            LAYOUT.weight_grid(),
            caption="../report/weights.rst",
            category="First-layer weights",
            subcategory="{dataset}",
            labels={"experiment": "{experiment}", "seed": "{seed}"},
        ),
    log:
        LAYOUT.log("aggregate", "weights-{dataset}-{experiment}-seed{seed}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "imgzoo weights --out {output:q} {input:q} > {log:q} 2>&1"


rule sweep_plot:
    input:
        lambda w: run_logs(w.dataset, w.sweep),
    output:
        report(
            LAYOUT.sweep_plot(),
            caption="../report/sweep.rst",
            category="Sweeps",
            subcategory="{dataset}",
        ),
    log:
        LAYOUT.log("aggregate", "sweep-{dataset}-{sweep}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    params:
        metric=lambda w: STUDY.sweeps[w.sweep]["metric"],
        same_as=lambda w: repeated_runs(w.dataset, w.sweep),
        labels=lambda w: run_labels(w.dataset, w.sweep),
    shell:
        "imgzoo sweep-plot --sweep {wildcards.sweep:q} --metric {params.metric}"
        " --same-as {params.same_as:q} --labels {params.labels:q} --out {output:q} {input:q} > {log:q} 2>&1"
