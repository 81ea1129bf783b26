"""The run log: one HDF5 file per run, a versioned contract between the training loop (writer),
the aggregation code and users' notebooks (readers). The schema is documented in the README.

Written once, when the run ends, to a temporary name and then renamed: a `metrics.h5` that exists
is complete. Readers open without HDF5 file locking, which cluster file systems do not support.
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
# 2: the confusion matrix and the first layer are the best-validation model's (model_best.pt),
# whose epoch is the attribute `best_epoch`; `imgzoo_version` names the commit.
SCHEMA_VERSION = 2

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
    "epoch_time",
    "images_per_s",
)

# Root attributes every log carries (more may be present).
REQUIRED_ATTRS = (
    "schema",
    "schema_version",
    "experiment",
    "model",
    "dataset",
    "seed",
    "config",
    "num_params",
    "status",
    "epochs_planned",
    "epochs_completed",
    "start_time",
    "end_time",
)

STATUSES = ("completed", "diverged")


def now() -> str:
    """The time of day in the run log's format (ISO 8601, UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


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

    @property
    def config(self) -> dict:
        return json.loads(self.attrs["config"])

    def epochs_frame(self):
        """The per-epoch series as a pandas DataFrame (pandas imported only here)."""
        import pandas as pd

        return pd.DataFrame({k: self.epochs[k] for k in EPOCH_SERIES})


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
    lengths = {k: len(log.epochs[k]) for k in EPOCH_SERIES}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"epoch series of unequal length: {lengths}")
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        for key, value in log.attrs.items():
            f.attrs[key] = _plain(value)
        group = f.create_group("epochs")
        for key in EPOCH_SERIES:
            dtype = np.int64 if key == "epoch" else np.float64
            group.create_dataset(key, data=np.asarray(log.epochs[key], dtype=dtype))
        if log.steps:
            steps = f.create_group("steps")
            for key, values in log.steps.items():
                steps.create_dataset(key, data=np.asarray(values))
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


def read(path: str | os.PathLike) -> RunLog:
    """Read a complete run log; RunLogError naming the file if it is missing, partial or foreign."""
    path = Path(path)
    if not path.exists():
        raise RunLogError(f"{path}: no such run log")
    try:
        with h5py.File(path, "r", locking=False) as f:
            attrs = checked_attrs(
                f, path, schema=SCHEMA, version=SCHEMA_VERSION, required=REQUIRED_ATTRS,
                what="run log", redo="delete it and re-run the run", error=RunLogError,
            )
            epochs = {k: f["epochs"][k][()] for k in EPOCH_SERIES}
            steps = {k: v[()] for k, v in f["steps"].items()} if "steps" in f else {}
            confusion = f["confusion"][()] if "confusion" in f else None
            class_names = strings(f["class_names"][()])
            first_layer, kind = None, ""
            if "weights/first_layer" in f:
                first_layer = f["weights/first_layer"][()]
                kind = str(f["weights/first_layer"].attrs.get("kind", ""))
    except RunLogError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise RunLogError(
            f"{path}: unreadable run log ({e.__class__.__name__}: {e}); delete it and re-run"
        ) from e
    return RunLog(attrs, epochs, confusion, class_names, first_layer, kind, steps, path)
