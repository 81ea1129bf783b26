"""`digits`: scikit-learn's bundled 8×8 handwritten digits (1797 images), no download needed.

The set has no official test split, so a stratified one is carved here with the split seed;
`train_index` / `test_index` are then rows of the bundled 1797-image array.
"""

from __future__ import annotations

import hashlib

import numpy as np

from imgzoo.data import options as opts
from imgzoo.data import splits
from imgzoo.data.readers import Raw

OPTIONS = {"test_fraction": 0.2}


def check_options(name: str, options: dict) -> None:
    opts.fraction(name, options, "test_fraction")


def read(name: str, options: dict) -> Raw:
    from sklearn.datasets import load_digits  # only here: listing datasets must stay cheap

    bunch = load_digits()
    raw_images = np.asarray(bunch.images, dtype=np.float64)
    raw_labels = np.asarray(bunch.target, dtype=np.int64)
    digest = hashlib.sha256(raw_images.tobytes() + raw_labels.tobytes()).hexdigest()
    # Pixel values are counts 0..16 of set bits in 4×4 blocks; scale to the full uint8 range.
    images = np.rint(raw_images * (255 / 16)).astype(np.uint8)[..., None]
    rng = np.random.default_rng([options["split_seed"], 0])
    train_rows, test_rows = splits.carve(raw_labels, rng, fraction=options["test_fraction"])
    return Raw(
        train_x=images[train_rows], train_y=raw_labels[train_rows],
        test_x=images[test_rows], test_y=raw_labels[test_rows],
        class_names=[str(d) for d in range(10)],
        source="sklearn.datasets.load_digits", source_sha256=digest,
        train_index=train_rows, test_index=test_rows,
    )


def image_size(options: dict) -> int:
    return 8  # scikit-learn's digits are 8×8
