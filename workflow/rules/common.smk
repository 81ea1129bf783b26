# The resolved study and the input functions. imgzoo.config loads the study files, validates them
# (schema + names) before any job runs and expands sweeps; everything here only asks it questions.
# The study is exactly the files given with --configfile (config/config.yaml when none is given),
# merged in order, plus --config overrides: the Snakefile declares no configfile of its own, so
# nothing of another study leaks in. Its files go to results/<study name>/ (imgzoo.paths).

import json
import os
import sys

from imgzoo.cli import put_command_on_path
from imgzoo.gpus import local_limit as local_gpu_limit
from imgzoo.config import Run, load_study
from imgzoo.data.registry import NAME_PATTERN as DATASET_NAME
from imgzoo.errors import ConfigError, ImgzooError
from imgzoo.frontpage import front_page
from imgzoo.models.catalog import has_first_layer_view
from imgzoo.slurm_resources import as_snakemake
from imgzoo.slurm_runs import run_log_folder

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
    dataset=DATASET_NAME,
    experiment="[^/]+",
    seed=r"\d+",


def run_of(wildcards):
    return Run(wildcards.dataset, wildcards.experiment, int(wildcards.seed))


def run_settings(wildcards):
    """What decides the run's numbers: the train rule's params (imgzoo.spec.Settings)."""
    return STUDY.spec(run_of(wildcards)).settings.to_json()


def model_sources(wildcards):
    """A network from the user's file: that file and the modules beside it that it imports are
    inputs of the run (editing one re-runs exactly the runs that use it); none for any other
    model."""
    return STUDY.model_sources(run_of(wildcards))


def run_resource(name):
    """One of the train rule's Snakemake resources (imgzoo.slurm_resources): what its SLURM job
    asks for. Resources, not params: changing them re-runs nothing."""

    def resource(wildcards):
        return as_snakemake(
            STUDY.resources(wildcards.experiment),
            max_requeues=STUDY.config["slurm"]["max_requeues"],
            log_folder=run_log_folder(
                STUDY.slurm_log_dir,
                wildcards.dataset,
                wildcards.experiment,
                wildcards.seed,
            ),
        )[name]

    return resource


def run_logs(dataset=None, sweep=None):
    """The logs that hold the numbers of a dataset's or a sweep's runs (all runs: None)."""
    return STUDY.logs_of(STUDY.runs_of(dataset, sweep))


def repeated_runs(dataset=None, sweep=None):
    """Runs that show another run's numbers under their own name (`--same-as` JSON)."""
    return json.dumps(STUDY.repeats_of(STUDY.runs_of(dataset, sweep)))


def run_labels(dataset=None, sweep=None):
    """How the study names the experiments of those runs (`--labels` JSON)."""
    return json.dumps(STUDY.labels_of(STUDY.runs_of(dataset, sweep)), sort_keys=True)


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


def published_json(dataset=None):
    """The study's published numbers (of one dataset: `dataset`), as `--published` JSON."""
    published = [
        entry
        for entry in STUDY.published()
        if dataset is None or entry["dataset"] == dataset
    ]
    return json.dumps(published, sort_keys=True)


def accuracy_plots():
    return [
        LAYOUT.accuracy_plot(d) for d in sorted({run.dataset for run in STUDY.runs})
    ]


def front_page_json():
    """What the report's front page shows and links to, of what this workflow makes."""
    datasets = list(dict.fromkeys(run.dataset for run in STUDY.runs))
    return json.dumps(front_page(LAYOUT, datasets, all_outputs()), sort_keys=True)


def comparisons_json():
    return json.dumps(STUDY.comparisons)


def claims_json():
    return json.dumps(STUDY.claims, sort_keys=True)


def all_outputs():
    datasets = sorted({run.dataset for run in STUDY.runs})
    return [
        LAYOUT.table("runs"),
        LAYOUT.table("summary"),
        LAYOUT.table("headline", "rst"),
        LAYOUT.table("efficiency"),
        *([LAYOUT.table("reproduction")] if STUDY.published() else []),
        *([LAYOUT.table("comparisons")] if STUDY.comparisons else []),
        *([LAYOUT.table("claims")] if STUDY.claims else []),
        *accuracy_plots(),
        *[LAYOUT.curves(d) for d in datasets],
        *weight_grids(),
        *sweep_plots(),
    ]
