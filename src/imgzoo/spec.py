"""A run's spec, in three parts: who the run is, what decides its numbers, what its job asks for.

- `RunId`: the study, experiment, dataset and seed. It names the run's folder and its log.
- `Settings`: everything that decides the run's numbers, and nothing else: the model family and
  its arguments, the training keys, the dataset's preparation options. The settings are the train
  rule's params (so changing one re-runs exactly the runs it touches), the key of a run's
  checkpoint (an attempt resumes only the settings that wrote it) and the key by which a study
  finds runs that repeat another's (trained once).
- `resources`: what the run's SLURM job asks for (time, memory, CPUs, GPUs, partition, account,
  qos, sbatch flags) and how it shares a GPU (pack, gpu_mem_fraction). They reach the executor as
  Snakemake resources: raising a time limit never re-runs a run nor discards its checkpoint, and a
  requeued or resubmitted run asks for what its new submission says.

The study resolves specs (`imgzoo.config.Study.spec`); the train command, the SLURM job, the run
log, progress.json and the benchmarks all carry a RunSpec. Torch-free, plain values only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from imgzoo.schema import train_keys_absent_as


@dataclass(frozen=True)
class RunId:
    study: str
    experiment: str
    dataset: str
    seed: int

    @property
    def name(self) -> str:
        """`dataset/experiment/s<seed>`: how logs and messages name the run."""
        return f"{self.dataset}/{self.experiment}/s{self.seed}"


@dataclass(frozen=True)
class Settings:
    # the model's family (a preset is resolved into family + model_args); for a timm or file
    # model its name: `timm/resnet10t`, `nets/my_net.py:build`
    family: str
    model_args: dict
    train: dict  # every training key, resolved
    data: dict  # the dataset's preparation options as configured
    # a network from a file: the file's content hash (editing the file changes the settings)
    model_file_sha256: str | None = None

    def to_dict(self) -> dict:
        absent_as = train_keys_absent_as()  # (once per call: it is a copy)
        train = {k: v for k, v in self.train.items() if not _absent(absent_as, k, v)}
        settings = {
            "family": self.family,
            "model_args": self.model_args,
            "train": train,
            "data": self.data,
        }
        # only where there is a file: every other run's settings stay as they were
        if self.model_file_sha256 is not None:
            settings["model_file_sha256"] = self.model_file_sha256
        return settings

    def to_json(self) -> str:
        """The settings as the train rule's params carry them (sorted keys: one text each)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> Settings:
        return cls(
            family=d["family"],
            model_args=dict(d.get("model_args", {})),
            train={**train_keys_absent_as(), **d["train"]},
            data=dict(d.get("data", {})),
            model_file_sha256=d.get("model_file_sha256"),
        )


def _absent(absent_as: dict, key: str, value) -> bool:
    """A training key added after runs were made without it, at the value that behaves as they
    did (`absent_as`: the schema's `x-absent-as`): left out of the settings, so that adding a
    key never changes a finished run's settings, nor re-runs it."""
    return key in absent_as and absent_as[key] == value


@dataclass(frozen=True)
class RunSpec:
    id: RunId
    settings: Settings
    # The run's resources (imgzoo's names: time_min, mem_gb, cpus, gpus, ...), where known: a
    # run made locally asks nothing of SLURM.
    resources: dict = field(default_factory=dict)

    @property
    def train(self) -> dict:
        return self.settings.train

    def key(self) -> str:
        """What decides the run's numbers, as one comparable text: its settings, dataset and
        seed (not its experiment's name nor its resources). Two runs with one key train the same
        model on the same data from the same seed."""
        return json.dumps(
            {"dataset": self.id.dataset, "seed": self.id.seed, **self.settings.to_dict()},
            sort_keys=True,
        )

    def with_resources(self, resources: dict) -> RunSpec:
        return replace(self, resources=dict(resources))

    def with_settings(self, settings: Settings) -> RunSpec:
        return replace(self, settings=settings)

    def to_dict(self) -> dict:
        return {
            "study": self.id.study,
            "experiment": self.id.experiment,
            "dataset": self.id.dataset,
            "seed": self.id.seed,
            "settings": self.settings.to_dict(),
            "resources": self.resources,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        return cls(
            id=RunId(d["study"], d["experiment"], d["dataset"], int(d["seed"])),
            settings=Settings.from_dict(d["settings"]),
            resources=dict(d.get("resources") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        return cls.from_dict(json.loads(text))
