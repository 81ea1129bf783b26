"""`tinyimagenet`: Tiny ImageNet 200 from the official zip (or its extracted folder).

Train: `train/<wnid>/images/*.JPEG` (500 per class). The official `val/` split (50 per class,
labels in `val/val_annotations.txt`) is used as the test split, since `test/` is unlabelled.
Classes are the wnids of `wnids.txt` in sorted order (as torchvision's ImageFolder numbers
them); names are the first synonym in `words.txt`. Train rows are ordered by class, then file
name; test rows in the order of val_annotations.txt. JPEGs are decoded with PIL, grayscale
ones converted to RGB.
"""

from __future__ import annotations

import io

import numpy as np

from imgzoo.data import sources
from imgzoo.data.readers import Raw
from imgzoo.errors import DataError

OPTIONS = dict(sources.SOURCE_OPTIONS)
check_options = sources.check_options
OFFICIAL = sources.Official("http://cs231n.stanford.edu/",
                            {"tiny-imagenet-200.zip": "90528d7ca1a48142e341f4ef8d21d0de"})
ROOT = "tiny-imagenet-200"
SIZE = 64


def source_problem(name: str, options: dict) -> str | None:
    return sources.missing(name, options, OFFICIAL)


def read(name: str, options: dict) -> Raw:
    tree = sources.open_archive_or_folder(name, options, OFFICIAL, ROOT)
    if not hasattr(tree, "names"):
        raise DataError(f"{tree.path}: Tiny ImageNet is read from the official zip "
                        f"({', '.join(OFFICIAL.files)}) or its extracted folder")
    text = {m: d.decode() for m, d in tree.read(("wnids.txt", "words.txt",
                                                 "val/val_annotations.txt"))}
    wnids = sorted({line.strip() for line in text["wnids.txt"].splitlines() if line.strip()})
    index = {w: i for i, w in enumerate(wnids)}
    class_names = _first_names(text["words.txt"], wnids)
    train_files, train_y = _train_files(tree.names(), index)
    test_files, test_y = _test_files(text["val/val_annotations.txt"], index, tree.path)
    train_x = _decode_all(tree, train_files)
    test_x = _decode_all(tree, test_files)
    return Raw(train_x, train_y, test_x, test_y, class_names, source=str(tree.path),
               source_sha256=tree.digest())


def _first_names(words: str, wnids: list[str]) -> list[str]:
    """'n01443537<TAB>goldfish, Carassius auratus' -> 'goldfish' (the wnid where absent)."""
    first = {}
    for line in words.splitlines():
        wnid, _, synonyms = line.partition("\t")
        first[wnid.strip()] = synonyms.split(",")[0].strip()
    return [first.get(w) or w for w in wnids]


def _train_files(names: list[str], index: dict[str, int]) -> tuple[list[str], np.ndarray]:
    files = sorted(
        (index[parts[1]], n) for n in names
        if len(parts := n.split("/")) == 4 and parts[0] == "train" and parts[2] == "images"
        and parts[1] in index and n.lower().endswith(".jpeg")
    )
    return [n for _, n in files], np.array([c for c, _ in files], dtype=np.int64)


def _test_files(annotations: str, index: dict[str, int], where) -> tuple[list[str], np.ndarray]:
    files, labels = [], []
    for number, line in enumerate(annotations.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"{where}:{ROOT}/val/val_annotations.txt line {number}: expected "
                            f"'<file>\\t<wnid from wnids.txt>...'")
        files.append(f"val/images/{fields[0]}")
        labels.append(index[fields[1]])
    return files, np.array(labels, dtype=np.int64)


def _decode_all(tree, files: list[str]) -> np.ndarray:
    """Decode `files` into a preallocated N×64×64×3 array (the set is held once)."""
    from PIL import Image  # only here: PIL is needed for this dataset alone

    images = np.empty((len(files), SIZE, SIZE, 3), dtype=np.uint8)
    for row, (member, data) in enumerate(tree.read(files)):
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.size != (SIZE, SIZE):
                    raise DataError(f"{tree.path}:{ROOT}/{member}: {image.size[0]}×"
                                    f"{image.size[1]} pixels, expected {SIZE}×{SIZE}")
                images[row] = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{tree.path}:{ROOT}/{member}: not a readable JPEG ({e}); "
                            f"download the archive again") from e
    return images



def image_size(options: dict) -> int:
    return SIZE
