"""A run's first layer as a grid of grayscale tiles (study 1's ResNet18 `visualize()` recipe).

The K tiles (K, h, w) that the run log stores are min-max normalised *globally* to [0, 1], so the
tiles stay comparable with each other, and laid out row by row in a near-square grid (64 → 8×8).
The grid is drawn as one image (fast for hundreds of tiles) with nearest-neighbour pixels and a
coloured separator between tiles that no grayscale value can be mistaken for.
"""

from __future__ import annotations

import math

import numpy as np

from imgzoo import runlog
from imgzoo.aggregate import new_figure, save_figure
from imgzoo.errors import RunLogError

MAX_TILES = 256
GAP_COLOUR = "#8aa6cc"  # the separator: blue, so neither black nor white tiles merge with it


def grid_shape(k: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid for k tiles, filled row by row: 64 → (8, 8)."""
    cols = math.ceil(math.sqrt(k))
    return math.ceil(k / cols), cols


def normalise(tiles: np.ndarray) -> np.ndarray:
    """Global min-max to [0, 1] over all tiles; a constant layer becomes mid-gray."""
    tiles = np.asarray(tiles, dtype=np.float64)
    finite = tiles[np.isfinite(tiles)]
    if finite.size == 0:
        return np.full_like(tiles, np.nan)
    low, high = finite.min(), finite.max()
    if high == low:
        return np.where(np.isfinite(tiles), 0.5, np.nan)
    return (tiles - low) / (high - low)


def mosaic(tiles: np.ndarray) -> np.ndarray:
    """The tiles (K, h, w) as one 2-D image, NaN in the gaps (and around the border).

    Small tiles are enlarged by an integer factor first so that a one-pixel gap stays small
    beside a 3×3 kernel.
    """
    k, h, w = tiles.shape
    rows, cols = grid_shape(k)
    scale = max(1, math.ceil(16 / max(h, w)))
    tiles = np.kron(tiles, np.ones((scale, scale)))
    th, tw = h * scale, w * scale
    gap = max(1, round(0.1 * max(th, tw)))
    image = np.full((rows * (th + gap) + gap, cols * (tw + gap) + gap), np.nan)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        top, left = gap + r * (th + gap), gap + c * (tw + gap)
        image[top : top + th, left : left + tw] = tile
    return image


def _tiles(log) -> np.ndarray:
    if log.first_layer is None:
        raise RunLogError(
            f"{log.path}: run log has no first-layer weights (model family "
            f"'{log.attrs['family']}' has no first-layer view); drop this run from the weight grids"
        )
    tiles = np.asarray(log.first_layer)
    if tiles.ndim != 3 or 0 in tiles.shape:
        raise RunLogError(
            f"{log.path}: first-layer weights have shape {tiles.shape}, expected (K, h, w) "
            "(delete the log and re-run the run)"
        )
    return tiles


def grid_title(log, shape: tuple[int, int, int]) -> str:
    k, h, w = shape
    count = f"first {MAX_TILES} of {k} tiles" if k > MAX_TILES else f"{k} tiles"
    a = log.attrs
    return (
        f"{a['experiment']} / {a['dataset']} / seed {a['seed']}: "
        f"{log.first_layer_kind or 'first layer'} ({count} {h}×{w})"
    )


def write_weight_grid(log_path, out_png) -> None:
    """Draw the first-layer grid of the run logged at `log_path` into `out_png`."""
    import matplotlib

    log = runlog.read(log_path)
    tiles = _tiles(log)
    shown = normalise(tiles)[:MAX_TILES]  # normalised over all K: the scale is the layer's
    image = mosaic(shown)
    height, width = image.shape
    fig = new_figure((7, 7 * height / width + 0.5))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["gray"].with_extremes(bad=GAP_COLOUR)
    ax.imshow(np.ma.masked_invalid(image), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(grid_title(log, tiles.shape), fontsize=10)
    save_figure(fig, out_png)
