"""The image files of a folder in torchvision's ImageFolder layout, and the class of each.

`source/train/<class>/...` and, where present, `source/test/<class>/...`; a class folder may
hold subfolders. Classes are train's folders in sorted order (the numbering ImageFolder gives
them) and files are taken in sorted order of their paths, so the same folder always gives the
same rows. Hidden entries (names starting with '.': .DS_Store, ._photo.jpg, .ipynb_checkpoints)
and files no Pillow reader claims by extension (a labels.csv, Thumbs.db) are ignored and
counted; a file with an image extension that does not decode is an error, later, not ignored.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from imgzoo.errors import DataError

LAYOUT = "train/<class>/<image files> and optionally test/<class>/<image files>"


@dataclass
class SplitFiles:
    """One split's image files (paths relative to the source, '/'-separated) and labels."""

    files: list[str]
    labels: np.ndarray


@dataclass
class ImageFiles:
    class_names: list[str]
    train: SplitFiles
    test: SplitFiles | None  # None: the source has no test/ folder
    ignored: Counter = field(default_factory=Counter)  # reason -> how many entries
    ignored_example: dict = field(default_factory=dict)  # reason -> one of them, for messages


@cache
def image_extensions() -> dict[str, str]:
    """Extension -> Pillow's format, of the formats Pillow can open (not those it can only
    write, like .pdf)."""
    from PIL import Image

    Image.init()
    return {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def format_of(path: str) -> str | None:
    """The format a file's extension names (None: none Pillow reads)."""
    return image_extensions().get(os.path.splitext(path)[1].lower())


def list_images(source: Path) -> ImageFiles:
    """The image files of `source` by split and class; DataError naming the folder when the
    layout is wrong: no train/ or no class in it, a class without images, a test class that
    train does not have."""
    ignored, example = Counter(), {}
    train_dir = source / "train"
    if not train_dir.is_dir():
        raise DataError(f"{source}: no train/ folder (an image folder holds {LAYOUT})")
    classes = _class_folders(train_dir, ignored, example)
    if not classes:
        raise DataError(f"{train_dir}: no class folders (expected {LAYOUT})")
    train = _split_files(source, "train", classes, ignored, example)
    test = None
    test_dir = source / "test"
    if test_dir.is_dir():
        test_classes = _class_folders(test_dir, ignored, example)
        if not test_classes:
            raise DataError(f"{test_dir}: no class folders (expected {LAYOUT}; without test/ "
                            f"the test split is carved from train/)")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DataError(f"{test_dir / unknown[0]}: class '{unknown[0]}' is not one of "
                            f"train/'s classes ({', '.join(classes)})")
        test = _split_files(source, "test", test_classes, ignored, example,
                            numbering=classes)
    return ImageFiles(classes, train, test, ignored, example)


def _class_folders(split_dir: Path, ignored: Counter, example: dict) -> list[str]:
    """The class folders of a split folder, sorted; anything else there is ignored."""
    classes = []
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            _ignore(ignored, example, "hidden", split_dir / entry.name)
        elif entry.is_dir():
            classes.append(entry.name)
        else:
            _ignore(ignored, example, "outside a class folder", split_dir / entry.name)
    return classes


def _split_files(source: Path, split: str, classes: list[str], ignored: Counter,
                 example: dict, numbering: list[str] | None = None) -> SplitFiles:
    """Every image file of `split`'s class folders; labels number classes as `numbering` does
    (train's classes: a test split may lack some)."""
    index = {c: i for i, c in enumerate(numbering or classes)}
    files, labels = [], []
    for cls in classes:
        found = []
        _walk(source, f"{split}/{cls}", found, ignored, example)
        if not found:
            raise DataError(f"{source / split / cls}: class folder without image files (remove "
                            f"it, or add images)")
        found.sort()
        files += found
        labels += [index[cls]] * len(found)
    return SplitFiles(files, np.array(labels, dtype=np.int64))


def _walk(source: Path, folder: str, found: list[str], ignored: Counter, example: dict) -> None:
    """Add the image files under `source/folder` to `found`, as paths relative to `source`.
    Strings, not Path objects: a folder of 100,000 files is listed in a fraction of a second."""
    extensions = image_extensions()
    for entry in os.scandir(os.path.join(source, folder)):
        rel = f"{folder}/{entry.name}"
        if entry.name.startswith("."):
            _ignore(ignored, example, "hidden", source / rel)
        elif entry.is_dir():
            _walk(source, rel, found, ignored, example)
        elif os.path.splitext(entry.name)[1].lower() in extensions:
            found.append(rel)
        else:
            _ignore(ignored, example, "not an image", source / rel)


def _ignore(ignored: Counter, example: dict, reason: str, path: Path) -> None:
    ignored[reason] += 1
    example.setdefault(reason, str(path))
