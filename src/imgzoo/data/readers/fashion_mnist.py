"""`fashion_mnist`: Zalando's Fashion-MNIST, four idx files (gzipped or not) in one folder.

Default source: resources/fashion_mnist/, else where Debian's `dataset-fashion-mnist` package
puts the files. Each file must match its published md5: that of the .gz as served upstream, or
that of the uncompressed idx file (the form torchvision checks after extracting). The second
is what makes Debian's copy pass: Debian recompressed the files (new gzip header), so its .gz
bytes differ while the idx content is the same.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from imgzoo.data import sources
from imgzoo.data.readers import Raw
from imgzoo.errors import ConfigError, DataError

OPTIONS = dict(sources.SOURCE_OPTIONS)
# file: (md5 of file.gz as published, md5 of the uncompressed file)
MD5 = {
    "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe",
                                "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79",
                               "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310",
                               "15d484375f8d13e6eb1aabb0c3f46965"),
}
OFFICIAL = sources.Official("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                            {f"{stem}.gz": gz for stem, (gz, _) in MD5.items()})
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801  # idx: unsigned bytes, 3 or 1 dimensions


def check_options(name: str, options: dict) -> None:
    # The checksum option here maps each of the four files to its digest (or is false).
    sources.check_options(name, {**options, "checksum": None})
    _expected(name, options["checksum"])


def source_problem(name: str, options: dict) -> str | None:
    return sources.missing(name, options, OFFICIAL, default=DEBIAN)


def read(name: str, options: dict) -> Raw:
    folder = sources.locate(name, options, OFFICIAL, default=DEBIAN)
    if not folder.is_dir():
        raise DataError(f"{folder}: the {name} source is the folder holding the four idx files "
                        f"({', '.join(MD5)}, each optionally .gz)")
    expected = _expected(name, options["checksum"])
    if options["checksum"] is False:
        warnings.warn(f"dataset '{name}': checksum: false, the idx files are not verified",
                      stacklevel=2)
    digest = hashlib.sha256()
    content = {}
    for stem in MD5:
        path, data = _find(folder, stem)
        digest.update(data)
        content[stem] = path, _verified_content(name, path, data, expected.get(stem, MD5[stem]))
    train_x, train_y = _pair(folder, content, "train")
    test_x, test_y = _pair(folder, content, "t10k")
    return Raw(train_x, train_y, test_x, test_y, list(CLASS_NAMES), source=str(folder),
               source_sha256=digest.hexdigest())


def _expected(name: str, checksum) -> dict:
    """The checksum option as {file: hex} (empty: use the published md5s)."""
    if checksum is None or checksum is True:
        return {}
    if checksum is False:
        return dict.fromkeys(MD5, False)
    if isinstance(checksum, dict) and set(checksum) == set(MD5):
        return {stem: str(hex_).lower() for stem, hex_ in checksum.items()}
    raise ConfigError(f"dataset '{name}': option checksum must map each of {', '.join(MD5)} to "
                      f"its md5 or sha256 (of the file as stored), or be false")


def _find(folder: Path, stem: str) -> tuple[Path, bytes]:
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path, path.read_bytes()
    raise DataError(f"{folder}: lacks {stem}.gz (or {stem}); "
                    f"{sources.help_text('fashion_mnist', OFFICIAL)}")


def _verified_content(name: str, path: Path, data: bytes, expected) -> bytes:
    """The uncompressed idx bytes of `path`, after checking it against `expected`.

    `expected` is False (no check), a hex string (of the file as stored) or the pair of
    published md5s (.gz, uncompressed).
    """
    if isinstance(expected, str):
        algorithm = hashlib.md5 if len(expected) == 32 else hashlib.sha256
        if algorithm(data).hexdigest() != expected:
            raise DataError(f"{path}: checksum does not match the checksum option {expected}")
        return _uncompressed(path, data)
    if expected is False:
        return _uncompressed(path, data)
    gz_md5, raw_md5 = expected
    if path.suffix == ".gz" and hashlib.md5(data).hexdigest() == gz_md5:
        return _uncompressed(path, data)
    content = _uncompressed(path, data)
    if hashlib.md5(content).hexdigest() != raw_md5:
        raise DataError(f"{path}: does not match the published md5 ({gz_md5} for the .gz, "
                        f"{raw_md5} uncompressed): a truncated or different file; download it "
                        f"again, or set checksum: to your own copy's md5s")
    return content


def _uncompressed(path: Path, data: bytes) -> bytes:
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: truncated or corrupt gzip file ({e}); download it again") \
            from e


def _pair(folder: Path, content: dict[str, tuple[Path, bytes]],
          prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = _idx(*content[f"{prefix}-images-idx3-ubyte"], IMAGES_MAGIC)
    labels = _idx(*content[f"{prefix}-labels-idx1-ubyte"], LABELS_MAGIC).astype(np.int64)
    if len(labels) != len(images) or (len(labels) and labels.max() >= len(CLASS_NAMES)):
        raise DataError(f"{folder}: {prefix} labels do not match its images (count or range)")
    return images[..., None], labels


def _idx(where: Path, data: bytes, magic: int) -> np.ndarray:
    """Parse an idx file: big-endian magic, dimension sizes, then the uint8 values."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        raise DataError(f"{where}: not an idx file of uint8 with {ndim} dimension(s) "
                        f"(magic {magic:#06x}); a different or damaged file")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != header + int(np.prod(shape)):
        raise DataError(f"{where}: {len(data)} bytes, but its header {shape} needs "
                        f"{header + int(np.prod(shape))}; truncated or damaged")
    if ndim == 3 and shape[1] != shape[2]:
        raise DataError(f"{where}: images of {shape[1]}×{shape[2]}, expected square ones")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def image_size(options: dict) -> int:
    return 28  # Fashion-MNIST's images are 28×28
