"""`cifar10` and `cifar100`: the official "python version" archives (pickled batches).

Each batch is a pickled dict: `data` uint8 N×3072 (a 32×32 red plane, then green, then blue,
row-major) and the labels (`labels`; CIFAR-100: `fine_labels`, the 100-class task). Batches are
unpickled with a restricted unpickler (data.safe_pickle), only after the archive's checksum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgzoo.data import safe_pickle, sources
from imgzoo.data.readers import Raw
from imgzoo.errors import DataError

OPTIONS = dict(sources.SOURCE_OPTIONS)
check_options = sources.check_options
SIZE = 32


@dataclass(frozen=True)
class Layout:
    official: sources.Official
    root: str  # the archive's top folder
    train: tuple[str, ...]  # batch files, in the order their rows are numbered
    test: tuple[str, ...]
    meta: str
    labels_key: str
    names_key: str
    num_classes: int


KRIZ = "https://www.cs.toronto.edu/~kriz/"
LAYOUTS = {
    "cifar10": Layout(
        sources.Official(KRIZ, {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}),
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
        "batches.meta", "labels", "label_names", 10),
    "cifar100": Layout(
        sources.Official(KRIZ, {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"}),
        "cifar-100-python", ("train",), ("test",), "meta", "fine_labels", "fine_label_names",
        100),
}


def source_problem(name: str, options: dict) -> str | None:
    return sources.missing(name, options, LAYOUTS[name].official)


def read(name: str, options: dict) -> Raw:
    layout = LAYOUTS[name]
    tree = sources.open_archive_or_folder(name, options, layout.official, layout.root)
    batches, class_names = {}, None
    for member, data in tree.read((*layout.train, *layout.test, layout.meta)):
        where = f"{tree.path}:{layout.root}/{member}"
        content = safe_pickle.loads(data, where)
        del data
        if member == layout.meta:
            class_names = _names(content, layout, where)
        else:
            batches[member] = _batch(content, layout, where)
    train_x, train_y = _stack([batches.pop(m) for m in layout.train])
    test_x, test_y = _stack([batches.pop(m) for m in layout.test])
    return Raw(train_x, train_y, test_x, test_y, class_names, source=str(tree.path),
               source_sha256=tree.digest())


def _batch(content: dict, layout: Layout, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 N×3072, labels int64 N) of one batch, checked."""
    data, labels = content.get("data"), content.get(layout.labels_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * SIZE * SIZE:
        raise DataError(f"{where}: 'data' is not a uint8 N×3072 array; not a CIFAR batch")
    labels = np.asarray(labels if isinstance(labels, list) else [], dtype=np.int64)
    if labels.shape != (len(data),) or (len(labels) and (
            labels.min() < 0 or labels.max() >= layout.num_classes)):
        raise DataError(f"{where}: '{layout.labels_key}' is not {len(data)} labels in "
                        f"0..{layout.num_classes - 1}; not a {layout.root} batch")
    return data, labels


def _names(content: dict, layout: Layout, where: str) -> list[str]:
    names = content.get(layout.names_key)
    if not isinstance(names, list) or len(names) != layout.num_classes:
        raise DataError(f"{where}: no list of {layout.num_classes} '{layout.names_key}'")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _stack(batches: list) -> tuple[np.ndarray, np.ndarray]:
    """Batches into one N×32×32×3 array, preallocated and filled; each batch's data is dropped
    once copied, so the set is held at most twice."""
    labels = np.concatenate([y for _, y in batches])
    images = np.empty((len(labels), SIZE, SIZE, 3), dtype=np.uint8)
    start = 0
    while batches:
        data, _ = batches.pop(0)
        images[start : start + len(data)] = data.reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1)
        start += len(data)
        del data
    return images, labels



def image_size(options: dict) -> int:
    return SIZE
