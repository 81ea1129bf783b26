"""The prepared-dataset file (`results/<study>/data/{name}.h5`): HDF5 schema, writer, reader.

The schema is a contract (docs/CONTRACTS.md, "Prepared dataset"); change it only together with
SCHEMA_VERSION. Written to a temporary name in the same folder and renamed, so a file that exists
is complete. Read without HDF5 file locking, which cluster file systems do not support.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from imgzoo.atomic import atomic_output
from imgzoo.errors import DataError
from imgzoo.hdf5 import checked_attrs, strings

SCHEMA = "imgzoo.dataset"
SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
# Rows written per HDF5 write: bounds the temporary copy that fancy indexing makes.
CHUNK_ROWS = 2048
REQUIRED_ATTRS = (
    "name", "num_classes", "image_size", "channels", "split_seed", "source", "source_sha256",
    "options", "mean", "std",
)


@dataclass
class Split:
    """Rows `rows` (in this order) of `images`/`labels`, to be written without copying the set.

    `source_index[k]` is the row in the official split that `rows[k]` came from.
    """

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    source_index: np.ndarray


@dataclass
class Prepared:
    """A prepared dataset in memory: uint8 N×H×W×C images and int64 labels per split."""

    name: str
    class_names: list[str]
    num_classes: int
    image_size: int
    channels: int
    mean: np.ndarray
    std: np.ndarray
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source_index: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    path: Path | None = None
    skipped_files: list[str] = field(default_factory=list)

    @property
    def options(self) -> dict:
        return json.loads(self.attrs.get("options", "{}"))

    @property
    def preparation(self) -> dict:
        """What preparing the source did that the images do not show (files older than this
        attribute have none)."""
        return json.loads(self.attrs.get("preparation", "{}"))


def write(path: str | os.PathLike, attrs: dict, class_names: list[str],
          splits: dict[str, Split], skipped_files: list[str] = ()) -> None:
    """Write a prepared dataset atomically; `attrs` are the root attributes after schema ones,
    `skipped_files` the source's files left out as unreadable ("path: reason")."""
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        for key, value in attrs.items():
            f.attrs[key] = value
        f.create_dataset("class_names", data=np.array(class_names, dtype=h5py.string_dtype()))
        # A dataset, not an attribute: an attribute holds at most 64 KiB, and a damaged folder
        # may leave out thousands of files.
        f.create_dataset("skipped_files",
                         data=np.array(list(skipped_files), dtype=h5py.string_dtype()))
        for split_name in SPLITS:
            _write_split(f.create_group(split_name), splits[split_name])
        f.flush()
        os.fsync(f.id.get_vfd_handle())


def _write_split(group: h5py.Group, split: Split) -> None:
    n = len(split.rows)
    shape = (n, *split.images.shape[1:])
    images = group.create_dataset("images", shape=shape, dtype=np.uint8)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        images[start:stop] = split.images[split.rows[start:stop]]
    group.create_dataset("labels", data=split.labels[split.rows].astype(np.int64))
    group.create_dataset("source_index", data=np.asarray(split.source_index, dtype=np.int64))


def load(path: str | os.PathLike) -> Prepared:
    """Read a prepared dataset; DataError naming the file if it is missing, foreign or corrupt."""
    path = Path(path)
    redo = "delete it and prepare the dataset again"
    if not path.exists():
        raise DataError(f"{path}: no such prepared dataset (prepare the dataset first)")
    try:
        with h5py.File(path, "r", locking=False) as f:
            attrs = checked_attrs(
                f, path, schema=SCHEMA, version=SCHEMA_VERSION, required=REQUIRED_ATTRS,
                what="prepared dataset", redo=redo, error=DataError,
            )
            class_names = strings(f["class_names"][()])
            skipped = strings(f["skipped_files"][()]) if "skipped_files" in f else []
            arrays = {
                s: (f[s]["images"][()], f[s]["labels"][()], f[s]["source_index"][()])
                for s in SPLITS
            }
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"{path}: unreadable prepared dataset ({e.__class__.__name__}: {e}; "
                        f"{redo})") from e
    prepared = Prepared(
        name=str(attrs["name"]),
        class_names=class_names,
        num_classes=int(attrs["num_classes"]),
        image_size=int(attrs["image_size"]),
        channels=int(attrs["channels"]),
        mean=np.asarray(attrs["mean"], dtype=np.float32),
        std=np.asarray(attrs["std"], dtype=np.float32),
        train_x=arrays["train"][0], train_y=arrays["train"][1],
        val_x=arrays["val"][0], val_y=arrays["val"][1],
        test_x=arrays["test"][0], test_y=arrays["test"][1],
        source_index={s: arrays[s][2] for s in SPLITS},
        attrs=attrs,
        path=path,
        skipped_files=skipped,
    )
    _check_consistent(prepared, path, redo)
    return prepared


def _check_consistent(p: Prepared, path: Path, redo: str) -> None:
    """Shapes, dtypes and label ranges agree with the attributes (catches hand-edited files)."""
    expected = (p.image_size, p.image_size, p.channels)
    if len(p.class_names) != p.num_classes or p.mean.shape != (p.channels,) \
            or p.std.shape != (p.channels,):
        raise DataError(f"{path}: class names or mean/std disagree with the attributes ({redo})")
    for split in SPLITS:
        x, y = getattr(p, f"{split}_x"), getattr(p, f"{split}_y")
        index = p.source_index[split]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != expected:
            raise DataError(f"{path}: {split}/images is {x.dtype} {x.shape}, expected uint8 "
                            f"N×{'×'.join(map(str, expected))} ({redo})")
        if y.dtype != np.int64 or y.shape != (len(x),) or index.shape != (len(x),):
            raise DataError(f"{path}: {split}/labels or source_index do not match its images "
                            f"({redo})")
        if len(y) and (y.min() < 0 or y.max() >= p.num_classes):
            raise DataError(f"{path}: {split}/labels outside 0..{p.num_classes - 1} ({redo})")


@dataclass(frozen=True)
class Shape:
    """What a model is built for; a prepared dataset (`imgzoo.data.Prepared`) has the same."""

    num_classes: int
    image_size: int
    channels: int


def read_shape(path) -> Shape | None:
    """A prepared dataset's shape from its root attributes alone (the root attributes `load`
    checks), so that the model is built and checked before the images are read; None where
    the file cannot say (reading it then names what is wrong)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return Shape(
                int(f.attrs["num_classes"]), int(f.attrs["image_size"]), int(f.attrs["channels"])
            )
    except (OSError, KeyError, ValueError, TypeError):
        return None
