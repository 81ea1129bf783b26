# Input functions and the resolved study. imgzoo.config validates the config (schema + names)
# before any job runs and expands sweeps; everything here only asks it questions.

import json
import os
import shlex
import sys

from imgzoo.config import Study
from imgzoo.errors import ConfigError
from imgzoo.models.catalog import has_first_layer_view
from imgzoo.slurm_submit import run_log_folder

try:
    STUDY = Study(config)
except ConfigError as error:
    sys.exit(f"imgzoo: config error: {error}")


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    experiment="[^/]+",
    seed=r"\d+",


def run_spec(wildcards):
    spec = STUDY.run_spec(wildcards.dataset, wildcards.experiment, int(wildcards.seed))
    return json.dumps(spec, sort_keys=True)


def slurm_log_folder(wildcards):
    return run_log_folder(
        STUDY.config["slurm"]["log_dir"],
        wildcards.dataset,
        wildcards.experiment,
        wildcards.seed,
    )


def run_resources(wildcards, name):
    return STUDY.resources(wildcards.experiment)[name]


def slurm_extra(wildcards):
    flags = run_resources(wildcards, "extra_sbatch")
    return " ".join(shlex.quote(flag) for flag in flags) or None


# Light rules stay on the login node when an executor plugin (profiles/slurm) runs the workflow.
localrules:
    prepare_dataset,
    tables,
    curves,
    weight_grid,
    sweep_plot,
    all,


def run_logs(dataset=None):
    return [
        f"{run.dir}/metrics.h5"
        for run in STUDY.runs
        if dataset is None or run.dataset == dataset
    ]


def sweep_logs(wildcards):
    return [
        f"{run.dir}/metrics.h5"
        for run in STUDY.runs
        if run.dataset == wildcards.dataset
        and STUDY.experiments[run.experiment].get("sweep", {}).get("name")
        == wildcards.sweep
    ]


def weight_grids():
    if not STUDY.config["report"]["weight_grids"]:
        return []
    return [
        f"results/figures/{run.dataset}/{run.experiment}/seed{run.seed}/first_layer.png"
        for run in STUDY.runs
        if has_first_layer_view(STUDY.experiments[run.experiment]["model"])
    ]


def sweep_plots():
    return [
        f"results/figures/{dataset}/sweep-{name}.png"
        for name, sweep in STUDY.sweeps.items()
        for dataset in STUDY.datasets_of(sweep["base"])
    ]


def all_outputs():
    datasets = sorted({run.dataset for run in STUDY.runs})
    return [
        "results/tables/runs.csv",
        "results/tables/summary.csv",
        *[f"results/figures/{d}/curves.png" for d in datasets],
        *weight_grids(),
        *sweep_plots(),
    ]
