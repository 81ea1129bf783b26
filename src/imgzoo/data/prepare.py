"""prepare(): read a dataset's source, split it, and write the prepared HDF5 file."""

from __future__ import annotations

import json
import os

import numpy as np

from imgzoo.data import registry, splits, stats, store
from imgzoo.data.checks import checked_options
from imgzoo.data.readers import Raw
from imgzoo.errors import ConfigError


def prepare(name: str, options: dict | None, out_path: str | os.PathLike) -> None:
    """Prepare dataset `name` into `out_path` (atomically: no file appears if anything fails)."""
    options = checked_options(name, options)
    raw = registry.reader(name, options).read(name, options)
    train, val = _train_val(name, raw, options)
    mean, std = stats.channel_mean_std(raw.train_x, train.rows)
    attrs = {
        "name": name,
        "num_classes": len(raw.class_names),
        "image_size": raw.train_x.shape[1],
        "channels": raw.train_x.shape[3],
        "split_seed": options["split_seed"],
        "source": raw.source,
        "source_sha256": raw.source_sha256,
        "options": json.dumps(options, sort_keys=True, default=str),
        "mean": mean,
        "std": std,
        "preparation": json.dumps(raw.preparation, sort_keys=True),
    }
    test_rows = np.arange(len(raw.test_y), dtype=np.int64)
    test = store.Split(raw.test_x, raw.test_y, test_rows, raw.test_index)
    store.write(out_path, attrs, raw.class_names, {"train": train, "val": val, "test": test},
                raw.skipped_files)


def _train_val(name: str, raw: Raw, options: dict) -> tuple[store.Split, store.Split]:
    """Carve val out of the official train split; order train so any prefix is stratified."""
    n = len(raw.train_y)
    size = options["val_size"]
    if size is not None and size >= n:
        raise ConfigError(f"dataset '{name}': val_size {size} leaves no training rows "
                          f"(the training set has {n})")
    # Separate streams per use, so changing one step never shifts another's draw.
    seed = options["split_seed"]
    kept, val_rows = splits.carve(raw.train_y, np.random.default_rng([seed, 1]),
                                  fraction=options["val_fraction"], size=size)
    if len(val_rows) == 0:
        raise ConfigError(f"dataset '{name}': val_fraction {options['val_fraction']} of {n} "
                          f"training rows is an empty val split (raise it or set val_size)")
    order = splits.interleaved_order(raw.train_y[kept], np.random.default_rng([seed, 2]))
    train_rows = kept[order][: options["limit_train"]]
    return (
        store.Split(raw.train_x, raw.train_y, train_rows, raw.train_index[train_rows]),
        store.Split(raw.train_x, raw.train_y, val_rows, raw.train_index[val_rows]),
    )
