# The resolved study and the input functions. imgzoo.config loads the study files, validates them
# (schema + names) before any job runs and expands sweeps; everything here only asks it questions.
# The study is exactly the files given with --configfile (config/config.yaml when none is given),
# merged in order, plus --config overrides: the Snakefile declares no configfile of its own, so
# nothing of another study leaks in. Its files go to results/<study name>/ (imgzoo.paths).

import json
import os
import shlex
import sys

from imgzoo.cli import put_command_on_path
from imgzoo.gpus import local_limit as local_gpu_limit
from imgzoo.config import load_study
from imgzoo.errors import ConfigError, ImgzooError
from imgzoo.models.catalog import has_first_layer_view
from imgzoo.slurm_submit import run_log_folder

try:
    STUDY = load_study(
        workflow.config_settings.configfiles, workflow.config_settings.config
    )
    # The rules call `imgzoo`: found even where the environment was not activated.
    put_command_on_path()
except ConfigError as error:
    sys.exit(f"imgzoo: config error: {error}")
except ImgzooError as error:
    sys.exit(f"imgzoo: error: {error}")
LAYOUT = STUDY.layout
# Snakemake's own `config` (the report's front page reads it) becomes the study as resolved:
# with its name and defaults, also where no --configfile was given.
config.update(STUDY.config)


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


def gpu_mem_fraction(wildcards):
    fraction = run_resources(wildcards, "gpu_mem_fraction")
    return None if fraction is None else str(fraction)


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
    reproduction,
    comparisons,
    headline,
    all,


def run_logs(dataset=None, sweep=None):
    """The logs that hold the numbers of a dataset's or a sweep's runs (all runs: None)."""
    return STUDY.logs_of(STUDY.runs_of(dataset, sweep))


def repeated_runs(dataset=None, sweep=None):
    """Runs that show another run's numbers under their own name (`--same-as` JSON)."""
    return json.dumps(STUDY.repeats_of(STUDY.runs_of(dataset, sweep)))


def weight_grids():
    if not STUDY.config["report"]["weight_grids"]:
        return []
    return [
        LAYOUT.weight_grid(run.dataset, run.experiment, run.seed)
        for run in STUDY.trained_runs
        if has_first_layer_view(STUDY.experiments[run.experiment]["model"])
    ]


def sweep_plots():
    return [
        LAYOUT.sweep_plot(dataset, name)
        for name, sweep in STUDY.sweeps.items()
        for dataset in STUDY.datasets_of(sweep["base"])
    ]


def published_json():
    return json.dumps(STUDY.published(), sort_keys=True)


def comparisons_json():
    return json.dumps(STUDY.comparisons())


def all_outputs():
    datasets = sorted({run.dataset for run in STUDY.runs})
    return [
        LAYOUT.table("runs"),
        LAYOUT.table("summary"),
        LAYOUT.table("headline", "rst"),
        *([LAYOUT.table("reproduction")] if STUDY.published() else []),
        *([LAYOUT.table("comparisons")] if STUDY.comparisons() else []),
        *[LAYOUT.curves(d) for d in datasets],
        *weight_grids(),
        *sweep_plots(),
    ]
