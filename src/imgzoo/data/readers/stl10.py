"""`stl10`: the official binary archive; only the labelled train and test parts are read.

`*_X.bin` holds uint8 images of 3×96×96, each channel stored column-major; `*_y.bin` holds one
uint8 label per image, 1..10. The 100,000 unlabelled images are never read.
"""

from __future__ import annotations

import numpy as np

from imgzoo.data import sources
from imgzoo.data.readers import Raw
from imgzoo.errors import DataError

OPTIONS = dict(sources.SOURCE_OPTIONS)
check_options = sources.check_options
OFFICIAL = sources.Official("http://ai.stanford.edu/~acoates/stl10/",
                            {"stl10_binary.tar.gz": "91f7769df0f17e558f3565bffb0c7dfb"})
ROOT = "stl10_binary"
SIZE = 96
IMAGE_BYTES = 3 * SIZE * SIZE
FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt")


def source_problem(name: str, options: dict) -> str | None:
    return sources.missing(name, options, OFFICIAL)


def read(name: str, options: dict) -> Raw:
    tree = sources.open_archive_or_folder(name, options, OFFICIAL, ROOT)
    arrays, class_names = {}, None
    for member, data in tree.read(FILES):
        where = f"{tree.path}:{ROOT}/{member}"
        if member == "class_names.txt":
            class_names = [line.strip() for line in data.decode().splitlines() if line.strip()]
        elif member.endswith("_X.bin"):
            arrays[member] = _images(data, where)
        else:
            arrays[member] = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 1
        del data
    if class_names is None or len(class_names) != 10:
        raise DataError(f"{tree.path}:{ROOT}/class_names.txt: expected 10 class names")
    for split in ("train", "test"):
        x, y = arrays[f"{split}_X.bin"], arrays[f"{split}_y.bin"]
        if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
            raise DataError(f"{tree.path}:{ROOT}/{split}_y.bin: expected {len(x)} labels in "
                            f"1..10")
    return Raw(arrays["train_X.bin"], arrays["train_y.bin"], arrays["test_X.bin"],
               arrays["test_y.bin"], class_names, source=str(tree.path),
               source_sha256=tree.digest())


def _images(data: bytes, where: str) -> np.ndarray:
    """N×96×96×3 from the column-major channel planes: pixel (x, y) of channel c is at
    [c][x][y], hence the transpose."""
    if len(data) % IMAGE_BYTES:
        raise DataError(f"{where}: {len(data)} bytes is not a whole number of 3×96×96 images")
    planes = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3, SIZE, SIZE)
    images = np.empty((len(planes), SIZE, SIZE, 3), dtype=np.uint8)
    images[...] = planes.transpose(0, 3, 2, 1)
    return images



def image_size(options: dict) -> int:
    return SIZE
