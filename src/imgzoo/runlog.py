"""The run log: one HDF5 file per run, a versioned contract between the training loop (writer),
the aggregation code and users' notebooks (readers). The schema is documented in docs/runlog.md.

Written once, when the run ends, to a temporary name and then renamed: a `metrics.h5` that exists
is complete. Readers open without HDF5 file locking, which cluster file systems do not support.
Version 2 logs (before run specs had three parts) are still read, as version 3 (`_from_v2`).
Imports h5py and numpy only (aggregation must not pull in torch).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from imgzoo.atomic import atomic_output
from imgzoo.errors import RunLogError
from imgzoo.hdf5 import checked_attrs, strings

SCHEMA = "imgzoo.runlog"
# 3: the spec in three parts (`spec`: study, experiment, dataset, seed, settings, resources) in
#    place of `config`; `started` / `ended`, `wall_time_s`; per-epoch `train_time` (training
#    only) beside `epoch_time` (training and evaluation).
# 2: the confusion matrix and the first layer are the best-validation model's (model_best.pt),
#    whose epoch is the attribute `best_epoch`; `imgzoo_version` names the commit.
SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)

# Per-epoch series, in this order; every one has one value per completed epoch.
EPOCH_SERIES = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "train_subset_acc",
    "lr",
    "train_time",  # seconds of training steps
    "epoch_time",  # seconds of the epoch: training and evaluation
    "images_per_s",  # training images per second of train_time
)

# The optional group `evaluations` (runs with `train.eval_every_steps`): one value per
# evaluation made every N training steps, in this order. `step` counts the run's steps from 1;
# `epoch` is the epoch the step belongs to.
EVALUATION_SERIES = (
    "step",
    "epoch",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "train_subset_acc",
)
INTEGER_SERIES = ("epoch", "step")

# The series that time a run: they differ between two runs of the same settings, which agree on
# every other series to the bit.
TIMING_SERIES = ("train_time", "epoch_time", "images_per_s")

# Root attributes every log carries (more may be present).
REQUIRED_ATTRS = (
    "schema",
    "schema_version",
    "study",
    "experiment",
    "dataset",
    "seed",
    "family",
    "spec",
    "num_params",
    "status",
    "epochs_planned",
    "epochs_completed",
    "started",
    "ended",
)
_REQUIRED_V2 = (
    "schema", "schema_version", "experiment", "model", "dataset", "seed", "config", "num_params",
    "status", "epochs_planned", "epochs_completed", "start_time", "end_time",
)

STATUSES = ("completed", "diverged")

# The optional group `gpu`: the run's GPU sampled while it trained (imgzoo.gpu_usage), one value
# per sample; its attributes say of what and how. Absent for a run without a GPU or samples.
GPU_SERIES = ("time_s", "utilization", "memory_mb")
GPU_ATTRS = ("memory_total_mb", "source", "device_id", "interval_s")


def now() -> str:
    """The time of day in the run log's format (ISO 8601, UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_attrs(
    spec: dict,
    *,
    num_params: int,
    status: str,
    epochs_completed: int,
    best_epoch: int,
    started: str,
    best_step: int = -1,
    ended: str = "",
    diverged_epoch: int = -1,
    wall_time_s: float = float("nan"),
    capture_time_s: float = 0.0,
    slurm_job_ids: list[str] = (),
) -> dict:
    """The root attributes of a run's log (but the schema's own and provenance), from its spec
    (`imgzoo.spec.RunSpec.to_dict()`) and how far it got: the one builder, for the finished
    run's log, an unfinished run's view (imgzoo.live) and the benchmarks alike. A network from a
    file adds `model_file` (its path) and `model_file_sha256` (its content hash)."""
    return {
        **_model_file_attrs(spec["settings"]),
        "study": spec["study"],
        "experiment": spec["experiment"],
        "dataset": spec["dataset"],
        "seed": int(spec["seed"]),
        "family": spec["settings"]["family"],
        "spec": json.dumps(spec, sort_keys=True),
        "num_params": int(num_params),
        "status": status,
        "diverged_epoch": int(diverged_epoch),
        "best_epoch": int(best_epoch),
        "best_step": int(best_step),
        "epochs_planned": int(spec["settings"]["train"]["epochs"]),
        "epochs_completed": int(epochs_completed),
        "started": started,
        "ended": ended,
        "wall_time_s": float(wall_time_s),
        "capture_time_s": float(capture_time_s),
        "slurm_job_ids": ",".join(slurm_job_ids),
    }


def _model_file_attrs(settings: dict) -> dict:
    sha256 = settings.get("model_file_sha256")
    if sha256 is None:
        return {}
    # a file model's family is `path.py:callable` (imgzoo.models.catalog.model_file; not imported:
    # aggregation reads logs without the models package, tests/test_aggregate.py holds it)
    return {"model_file": settings["family"].rpartition(":")[0], "model_file_sha256": sha256}


@dataclass
class RunLog:
    """A run log in memory. `epochs` maps each name of EPOCH_SERIES to a 1-D array."""

    attrs: dict
    epochs: dict[str, np.ndarray]
    confusion: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    first_layer: np.ndarray | None = None
    first_layer_kind: str = ""
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None
    # EVALUATION_SERIES -> 1-D arrays; empty for a run evaluated once per epoch only
    evaluations: dict[str, np.ndarray] = field(default_factory=dict)
    # GPU_SERIES (arrays) and GPU_ATTRS of the group `gpu`; {} where the log has none.
    gpu: dict = field(default_factory=dict)

    @property
    def spec(self) -> dict:
        """The run's spec (`imgzoo.spec.RunSpec.to_dict()`); RunLogError naming the file if its
        JSON is broken."""
        try:
            spec = json.loads(self.attrs["spec"])
        except (TypeError, ValueError) as e:
            raise RunLogError(f"{self.path}: run log's spec attribute is not JSON ({e})") from e
        if not isinstance(spec, dict):
            raise RunLogError(f"{self.path}: run log's spec attribute is not a JSON object")
        return spec


def _plain(value):
    """Attribute values h5py can store: JSON for dicts and lists, str for None."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    if value is None:
        return ""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        return str(value)  # numpy str subclasses have no HDF5 conversion
    return value


def write(path: str | os.PathLike, log: RunLog) -> None:
    """Write `log` to `path` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    missing = [
        k for k in REQUIRED_ATTRS if k not in log.attrs and k not in ("schema", "schema_version")
    ]
    if missing:
        raise ValueError(f"run log attributes missing: {missing}")
    _check_lengths("epoch", log.epochs, EPOCH_SERIES)
    if log.evaluations:
        _check_lengths("evaluation", log.evaluations, EVALUATION_SERIES)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        for key, value in log.attrs.items():
            f.attrs[key] = _plain(value)
        _write_series(f.create_group("epochs"), log.epochs, EPOCH_SERIES)
        if log.evaluations:
            _write_series(f.create_group("evaluations"), log.evaluations, EVALUATION_SERIES)
        if log.steps:
            steps = f.create_group("steps")
            for key, values in log.steps.items():
                steps.create_dataset(key, data=np.asarray(values))
        if len(log.gpu.get("time_s", ())):
            gpu = f.create_group("gpu")
            for key in GPU_SERIES:
                gpu.create_dataset(key, data=np.asarray(log.gpu[key], dtype=np.float64))
            for key in GPU_ATTRS:
                gpu.attrs[key] = _plain(log.gpu.get(key))
        if log.confusion is not None:
            f.create_dataset("confusion", data=np.asarray(log.confusion, dtype=np.int64))
        f.create_dataset(
            "class_names", data=np.array(log.class_names, dtype=h5py.string_dtype())
        )
        if log.first_layer is not None:
            weights = f.create_group("weights")
            ds = weights.create_dataset(
                "first_layer", data=np.asarray(log.first_layer, dtype=np.float32)
            )
            ds.attrs["kind"] = log.first_layer_kind
        f.flush()
        os.fsync(f.id.get_vfd_handle())


def _check_lengths(what: str, series: dict, names) -> None:
    lengths = {k: len(series[k]) for k in names}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{what} series of unequal length: {lengths}")


def _write_series(group, series: dict, names) -> None:
    for key in names:
        dtype = np.int64 if key in INTEGER_SERIES else np.float64
        group.create_dataset(key, data=np.asarray(series[key], dtype=dtype))


def read(path: str | os.PathLike) -> RunLog:
    """Read a complete run log; RunLogError naming the file if it is missing, partial or foreign."""
    path = Path(path)
    if not path.exists():
        raise RunLogError(f"{path}: no such run log")
    try:
        with h5py.File(path, "r", locking=False) as f:
            attrs = checked_attrs(
                f, path, schema=SCHEMA, version=READABLE_VERSIONS,
                required={2: _REQUIRED_V2, 3: REQUIRED_ATTRS}, what="run log",
                redo="delete it and re-run the run", error=RunLogError,
            )
            epochs = {k: f["epochs"][k][()] for k in f["epochs"]}
            steps = {k: v[()] for k, v in f["steps"].items()} if "steps" in f else {}
            evaluations = (
                {k: f["evaluations"][k][()] for k in EVALUATION_SERIES}
                if "evaluations" in f else {}
            )
            gpu = {}
            if "gpu" in f:
                gpu = {**dict(f["gpu"].attrs), **{k: f["gpu"][k][()] for k in GPU_SERIES}}
            confusion = f["confusion"][()] if "confusion" in f else None
            class_names = strings(f["class_names"][()])
            first_layer, kind = None, ""
            if "weights/first_layer" in f:
                first_layer = f["weights/first_layer"][()]
                kind = str(f["weights/first_layer"].attrs.get("kind", ""))
        if attrs["schema_version"] == 2:
            attrs, epochs = _from_v2(attrs, epochs)
        epochs = {k: epochs[k] for k in EPOCH_SERIES}
    except RunLogError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise RunLogError(
            f"{path}: unreadable run log ({e.__class__.__name__}: {e}); delete it and re-run"
        ) from e
    return RunLog(attrs, epochs, confusion, class_names, first_layer, kind, steps, path,
                  evaluations, gpu)


def _from_v2(attrs: dict, epochs: dict) -> tuple[dict, dict]:
    """A version-2 log as version 3: its `config` split into the spec's parts; `start_time` /
    `end_time` as `started` / `ended`; no `train_time` (version 2 timed training and evaluation
    together: NaN); `wall_time_s` the sum of its epochs' times. Its study is not recorded (""),
    nor its resources apart from its settings."""
    config = json.loads(attrs["config"])
    spec = {
        "study": "",
        "experiment": config["experiment"],
        "dataset": config["dataset"],
        "seed": int(config["seed"]),
        "settings": {k: config[k] for k in ("family", "model_args", "train", "data")},
        "resources": config.get("resources", {}),
    }
    upgraded = {k: v for k, v in attrs.items()
                if k not in ("config", "start_time", "end_time", "model")}
    upgraded.update(
        study="",
        family=config["family"],
        spec=json.dumps(spec, sort_keys=True),
        started=attrs["start_time"],
        ended=attrs["end_time"],
        wall_time_s=float(np.nansum(epochs["epoch_time"])),
    )
    epochs = {**epochs, "train_time": np.full(len(epochs["epoch"]), np.nan)}
    return upgraded, epochs
