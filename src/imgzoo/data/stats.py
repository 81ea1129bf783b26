"""Per-channel mean and std of uint8 images, in [0, 1] units, without a float copy of the set.

A 256-bin histogram per channel is exact and needs one small chunk in memory at a time, where
`images.astype(float)` of Tiny ImageNet's train split alone would take ~10 GB.
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 1024


def channel_mean_std(images: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as float32[C] over `images[rows]` (N×H×W×C uint8); population std."""
    channels = images.shape[-1]
    hist = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = images[np.sort(rows[start : start + CHUNK_ROWS])]
        for c in range(channels):
            hist[c] += np.bincount(chunk[..., c].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    count = hist.sum(axis=1)
    mean = (hist @ values) / count
    var = (hist @ values**2) / count - mean**2
    return mean.astype(np.float32), np.sqrt(np.maximum(var, 0.0)).astype(np.float32)
