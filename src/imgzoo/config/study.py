"""A resolved study, read-only: its runs, their specs, and the questions the workflow asks.

`Study(config)` resolves the config (`imgzoo.config.resolve`: validation, names, sweeps) and then
only answers: which runs there are (experiment × dataset × seed), each run's spec
(`imgzoo.spec.RunSpec`: identity, settings, resources), which runs repeat another's settings
(trained once, shown under both names), where their files go (`layout`), what was published
and what to compare. The Snakefile, the command line and the launchers all ask it. Imports no
torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from imgzoo.config.resolve import datasets_of, resolve, train_keys_of
from imgzoo.errors import ConfigError, unknown_name
from imgzoo.models import catalog, file_source
from imgzoo.paths import Layout
from imgzoo.schema import crop_padding_px
from imgzoo.spec import RunId, RunSpec, Settings


@dataclass(frozen=True)
class Run:
    dataset: str
    experiment: str
    seed: int


class Study:
    """A resolved config. `name` decides where the study's files go (`layout`:
    results/<name>/...). Runs whose settings are identical (a sweep point equal to its base, say)
    are trained once: `same_as` maps each such run to the first run with its settings, and
    `trained_runs` leaves them out."""

    def __init__(self, config: dict):
        resolved = resolve(config)
        self.config = resolved.config
        self.experiments = resolved.experiments
        self.comparisons = resolved.comparisons
        self.claims = resolved.claims  # the write-up's conclusions to test (compare.claims)
        self.name = self.config["name"]
        self.layout = Layout(self.name)
        self.sweeps = self.config["sweeps"]
        self.train = self.config["train"]

    # ---- runs -----------------------------------------------------------------------------

    def datasets_of(self, experiment: str) -> list[str]:
        return datasets_of(self.config, self.experiments[experiment])

    @cached_property
    def runs(self) -> list[Run]:
        return [
            Run(dataset, name, seed)
            for name in self.experiments
            for dataset in self.datasets_of(name)
            for seed in self.config["seeds"]
        ]

    @cached_property
    def same_as(self) -> dict[Run, Run]:
        """Each run whose settings equal an earlier run's -> that run."""
        first: dict[str, Run] = {}
        repeats = {}
        for run in self.runs:
            key = self.spec(run).key()
            if key in first:
                repeats[run] = first[key]
            else:
                first[key] = run
        return repeats

    @property
    def trained_runs(self) -> list[Run]:
        """The runs that train: every run but those that repeat an earlier run's settings."""
        return [run for run in self.runs if run not in self.same_as]

    def runs_of(self, dataset: str | None = None, sweep: str | None = None) -> list[Run]:
        """The runs on one dataset, or of one sweep, or both (None: any)."""
        return [
            run
            for run in self.runs
            if dataset in (None, run.dataset)
            and sweep in (None, self.experiments[run.experiment].get("sweep", {}).get("name"))
        ]

    # ---- files ----------------------------------------------------------------------------

    def run_dir(self, run: Run) -> str:
        return self.layout.run_dir(run.dataset, run.experiment, run.seed)

    def run_log(self, run: Run) -> str:
        return self.layout.run_log(run.dataset, run.experiment, run.seed)

    def logs_of(self, runs: list[Run]) -> list[str]:
        """The run logs that hold the numbers of `runs`, each once, in the order of `runs`
        (a run that repeats another's settings is read from that run's log)."""
        return list(dict.fromkeys(self.run_log(self.same_as.get(run, run)) for run in runs))

    @property
    def slurm_log_dir(self) -> str:
        """Where the SLURM jobs of the study's runs keep their logs (`slurm.log_dir`, else the
        study's logs/slurm)."""
        return self.config["slurm"]["log_dir"] or self.layout.log("slurm")

    # ---- how runs are shown ---------------------------------------------------------------

    def repeats_of(self, runs: list[Run]) -> list[dict]:
        """For each of `runs` that repeats an earlier run: the log that holds its numbers and the
        experiment to show them under. The aggregation commands take this (`--same-as`)."""
        return [
            {"log": self.run_log(self.same_as[run]), "experiment": run.experiment}
            for run in runs
            if run in self.same_as
        ]

    def labels_of(self, runs: list[Run]) -> dict[str, dict]:
        """How the study names the experiments of `runs`: experiment -> {"model": the model as
        configured (a family or a preset), "sweep": {name, base, values} of a sweep's point, else
        None}. Names, not settings: run logs hold settings, the aggregation commands take these
        (`--labels`)."""
        return {
            run.experiment: {
                "model": self.experiments[run.experiment]["model"],
                "sweep": self.experiments[run.experiment].get("sweep"),
            }
            for run in runs
        }

    def published(self) -> list[dict]:
        """The published numbers, one dict per (experiment, dataset): experiment, dataset,
        value (percent), measures, source and note ("" when the config gives none)."""
        return [
            {
                "experiment": name,
                "dataset": dataset,
                "value": float(entry["value"]),
                "measures": entry["measures"],
                "source": entry["source"],
                "note": entry.get("note", ""),
            }
            for name, exp in self.experiments.items()
            for dataset, entry in exp.get("published", {}).items()
        ]

    # ---- one run's spec -------------------------------------------------------------------

    def model_file(self, run: Run) -> str | None:
        """The file of a run whose network comes from one (`model: path.py:callable`)."""
        family, _ = catalog.resolve(self.experiments[run.experiment]["model"])
        found = catalog.model_file(family)
        return found[0] if found else None

    def model_sources(self, run: Run) -> list[str]:
        """The network's source where it comes from a file: that file and the modules beside it
        that it imports, inputs of the train rule, so that editing one re-runs exactly the runs
        that use it; none for any other model."""
        path = self.model_file(run)
        return [path, *file_source.local_modules(path)] if path else []

    def data_options(self, dataset: str) -> dict:
        return dict(self.config["data"].get(dataset, {}))

    def resources(self, experiment: str) -> dict:
        """The experiment's resources: the study's (schema defaults filled), then its own."""
        return {
            **self.config["resources"],
            **self.experiments[experiment].get("resources", {}),
        }

    def _resolved_padding(self, train: dict, dataset: str) -> dict:
        """`crop_padding: auto` as the pixels it means where the dataset's image size is known
        before preparation (the settings then say what the run does; a NumPy archive's size is
        known in the job only, where `auto` is resolved)."""
        if train["crop_padding"] != "auto":
            return train
        from imgzoo.data import image_size

        size = image_size(dataset, self.data_options(dataset))
        if size is None:
            return train
        return {**train, "crop_padding": crop_padding_px("auto", size)}

    def spec(self, run: Run) -> RunSpec:
        """Everything one run needs, resolved: what the train command gets and the log keeps."""
        experiment, dataset = run.experiment, run.dataset
        if experiment not in self.experiments:
            raise ConfigError(
                f"experiment: {unknown_name('experiment', experiment, self.experiments)}"
            )
        exp = self.experiments[experiment]
        if dataset not in self.datasets_of(experiment):
            raise ConfigError(
                f"experiment '{experiment}' does not run on dataset '{dataset}' "
                f"(its datasets: {', '.join(self.datasets_of(experiment))})"
            )
        per_dataset = exp.get("per_dataset", {}).get(dataset, {})
        path = self.model_file(run)
        family, model_args = catalog.resolve(
            exp["model"], {**exp.get("model_args", {}), **per_dataset.get("model_args", {})}
        )
        train = {**self.train, **train_keys_of(exp), **train_keys_of(per_dataset)}
        settings = Settings(
            family=family,
            model_args=model_args,
            train=self._resolved_padding(train, dataset),
            data=self.data_options(dataset),
            model_file_sha256=file_source.source_sha256(path) if path else None,
        )
        return RunSpec(
            RunId(self.name, experiment, dataset, int(run.seed)),
            settings,
            self.resources(experiment),
        )
