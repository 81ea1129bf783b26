"""`format: npz`: a NumPy archive (`np.savez`) holding the splits as arrays.

`x_train`, `x_test`: uint8 N×H×W (grayscale) or N×H×W×C, square, the same shape but N;
`y_train`, `y_test`: integer class indices from 0; optional `class_names`: strings, one per
class (else the classes are named by their index). Read without pickle: an archive whose arrays
need it (object arrays) is refused rather than allowed to run code.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from imgzoo.data.readers import Raw
from imgzoo.errors import ConfigError, DataError

OPTIONS = {
    "format": "npz",
    "source": None,  # the .npz file; required
}
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def check_options(name: str, options: dict) -> None:
    if not isinstance(options["source"], str):
        raise ConfigError(f"dataset '{name}': option source (the .npz file) is required for "
                          f"format npz")


def source_problem(name: str, options: dict) -> str | None:
    path = Path(options["source"]).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        return f"dataset '{name}': source {path} {what} (a NumPy .npz archive of " \
               f"{', '.join(ARRAYS)})"
    return None


def read(name: str, options: dict) -> Raw:
    problem = source_problem(name, options)
    if problem:
        raise DataError(problem)
    path = Path(options["source"]).expanduser()
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ARRAYS if key not in archive.files]
            if missing:
                raise DataError(f"{path}: lacks {', '.join(missing)} (an imgzoo .npz holds "
                                f"{', '.join(ARRAYS)} and optionally class_names)")
            arrays = {key: archive[key] for key in ARRAYS}
            names = archive["class_names"] if "class_names" in archive.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        # ValueError is also numpy's answer to an object array under allow_pickle=False.
        raise DataError(f"{path}: not a readable .npz archive of plain arrays "
                        f"({e.__class__.__name__}: {e})") from e
    train_x, test_x = (_images(path, key, arrays[key]) for key in ("x_train", "x_test"))
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{path}: x_train images are {_shape(train_x)}, x_test images "
                        f"{_shape(test_x)}; they must match")
    train_y, test_y = (_labels(path, y, arrays[y], len(arrays[x]))
                       for x, y in (("x_train", "y_train"), ("x_test", "y_test")))
    class_names = _class_names(path, names, max(train_y.max(initial=0), test_y.max(initial=0)))
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return Raw(train_x, train_y, test_x, test_y, class_names, source=str(path),
               source_sha256=digest.hexdigest())


def _shape(x: np.ndarray) -> str:
    return "×".join(map(str, x.shape[1:]))


def _images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """N×H×W×C uint8, square; N×H×W gains a channel axis."""
    given = x.shape
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[3] < 1:
        raise DataError(f"{path}: {key} is {x.dtype} of shape {given}; expected uint8 "
                        f"N×H×W or N×H×W×C with H == W")
    if len(x) == 0:
        raise DataError(f"{path}: {key} holds no images")
    return x


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer) \
            or (len(y) and y.min() < 0):
        raise DataError(f"{path}: {key} must be {n} integer class indices from 0 (one per "
                        f"image), got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)


def _class_names(path: Path, names: np.ndarray | None, top_label: int) -> list[str]:
    if names is None:
        return [str(c) for c in range(top_label + 1)]
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) <= top_label:
        raise DataError(f"{path}: class_names must be a list of strings, one per class (at "
                        f"least {top_label + 1}, the labels' range), got {names.dtype} of "
                        f"shape {names.shape}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
