"""Stratified, seeded splits of a labelled set, by row index (the images are never copied here).

Every split is drawn per class, so each class keeps its share of rows in every split; the seed
alone decides which rows go where, so every run of the workflow sees the same split.
"""

from __future__ import annotations

import numpy as np


def class_counts(labels: np.ndarray, fraction: float | None, size: int | None) -> np.ndarray:
    """How many rows of each class a split of `size` rows (or `fraction` of all) takes.

    Largest-remainder rounding: the per-class counts add up to exactly `size` and stay within one
    row of the exact proportion; remainder ties go to the lower class index.
    """
    labels = np.asarray(labels)
    per_class = np.bincount(labels)
    total = int(per_class.sum())
    if size is None:
        size = int(round(fraction * total))
    exact = per_class * (size / total)
    counts = np.floor(exact).astype(np.int64)
    short = size - int(counts.sum())
    # A stable sort on the negated remainder breaks ties by class index.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def carve(
    labels: np.ndarray, rng: np.random.Generator, *, fraction: float | None = None,
    size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows 0..N-1 into (kept, carved), stratified by class; both sorted ascending.

    `carved` holds `size` rows (or round(fraction * N)); which rows of a class are carved is a
    random draw from `rng`.
    """
    labels = np.asarray(labels)
    counts = class_counts(labels, fraction, size)
    carved = []
    for cls, count in enumerate(counts):
        rows = np.flatnonzero(labels == cls)
        carved.append(rng.permutation(rows)[:count])
    carved = np.sort(np.concatenate(carved)) if carved else np.empty(0, np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), carved, assume_unique=True)
    return kept.astype(np.int64), carved.astype(np.int64)


def interleaved_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of rows 0..N-1 in which every prefix holds each class in proportion.

    Classes are shuffled within themselves, then merged by relative position (k + u) / n_class
    with u uniform in [0, 1): so "the first N rows" is a stratified random subset, which is what
    the `limit_train` option relies on.
    """
    labels = np.asarray(labels)
    keys = np.empty(len(labels), dtype=np.float64)
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        keys[rows] = (np.arange(len(rows)) + rng.random(len(rows))) / len(rows)
    return np.argsort(keys, kind="stable").astype(np.int64)
