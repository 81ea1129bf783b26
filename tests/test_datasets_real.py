"""The real datasets' official on-disk formats, on tiny archives that each test builds itself.

Each builder writes a few images per class in the official layout; the prepared file must hold
exactly those pixels, labels and class names. Damaged, forged or hostile archives must fail with
a DataError and leave no output file.
"""

import gzip
import hashlib
import io
import os
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from archives import CIFAR10_NAMES, cifar10_members, cifar_batch, py2_pickle, write_tar
from PIL import Image

from imgzoo import data
from imgzoo.data.readers import fashion_mnist
from imgzoo.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def random_images(n, size, channels=3):
    return RNG.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def labels_for(n, classes):
    return np.arange(n) % classes


def prepare(tmp_path, name, options):
    out = tmp_path / f"{name}.h5"
    data.prepare(name, options, out)
    return data.load(out)


def assert_matches(p, train_x, train_y, test_x, test_y, class_names):
    """Train + val are exactly the official train rows they claim to be; test is in order."""
    assert p.class_names == list(class_names)
    for split in ("train", "val"):
        index = p.source_index[split]
        np.testing.assert_array_equal(getattr(p, f"{split}_x"), train_x[index])
        np.testing.assert_array_equal(getattr(p, f"{split}_y"), train_y[index])
    assert sorted(np.concatenate([p.source_index["train"], p.source_index["val"]])) == \
        list(range(len(train_y)))
    np.testing.assert_array_equal(p.test_x, test_x)
    np.testing.assert_array_equal(p.test_y, test_y)


def assert_fails(tmp_path, name, options, match, error=DataError):
    out = tmp_path / "out" / f"{name}.h5"
    with pytest.raises(error, match=match):
        data.prepare(name, options, out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.fixture
def cifar10(tmp_path):
    """(archive, members, train_x, train_y, test_x, test_y) of a 5×10 + 10 image CIFAR-10."""
    train_x, train_y = random_images(50, 32), labels_for(50, 10)
    test_x, test_y = random_images(10, 32), labels_for(10, 10)[::-1].copy()
    members = cifar10_members(train_x, train_y, test_x, test_y)
    archive = write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    return archive, members, train_x, train_y, test_x, test_y


def test_cifar10_archive(tmp_path, cifar10):
    archive, _, *arrays = cifar10
    p = prepare(tmp_path, "cifar10", {"source": str(archive), "checksum": md5(archive),
                                      "val_size": 10})
    assert_matches(p, *arrays, CIFAR10_NAMES)
    assert len(p.val_y) == 10 and np.bincount(p.val_y).tolist() == [1] * 10
    assert p.attrs["source_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert p.attrs["source"] == str(archive)


def test_cifar10_folder_holding_the_archive_and_sha256_checksum(tmp_path, cifar10):
    archive, _, *arrays = cifar10
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    p = prepare(tmp_path, "cifar10", {"source": str(tmp_path), "checksum": sha, "val_size": 10})
    assert_matches(p, *arrays, CIFAR10_NAMES)


def test_cifar10_extracted_folder(tmp_path, cifar10):
    _, members, *arrays = cifar10
    for name, content in members.items():
        (tmp_path / "x" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "x" / name).write_bytes(content)
    for source in (tmp_path / "x", tmp_path / "x" / "cifar-10-batches-py"):
        p = prepare(tmp_path, "cifar10", {"source": str(source), "val_size": 10})
        assert_matches(p, *arrays, CIFAR10_NAMES)


def test_cifar10_default_source_is_resources(tmp_path, cifar10, monkeypatch):
    archive, _, *arrays = cifar10
    (tmp_path / "resources" / "cifar10").mkdir(parents=True)
    archive.rename(tmp_path / "resources" / "cifar10" / archive.name)
    monkeypatch.chdir(tmp_path)
    # The tiny archive is not the published one: the default check must refuse it.
    assert_fails(tmp_path, "cifar10", {}, "does not match the published md5")
    p = prepare(tmp_path, "cifar10", {"val_size": 10, "checksum": md5(
        tmp_path / "resources" / "cifar10" / archive.name)})
    assert_matches(p, *arrays, CIFAR10_NAMES)


def test_missing_source_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_fails(tmp_path, "cifar10", {}, r"cifar-10-python\.tar\.gz.*resources/cifar10")
    assert_fails(tmp_path, "tinyimagenet", {"source": "nowhere.zip"},
                 r"nowhere\.zip does not exist.*tiny-imagenet-200\.zip")


def test_cifar10_bad_checksum(tmp_path, cifar10):
    archive = cifar10[0]
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": "0" * 32},
                 rf"{archive}: checksum .* does not match the checksum option")
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": "abc"},
                 "checksum must be", ConfigError)


def test_cifar10_truncated_archive(tmp_path, cifar10):
    archive = cifar10[0]
    original = md5(archive)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": original},
                 rf"{archive}: checksum")
    with pytest.warns(UserWarning, match="checksum: false"):
        assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": False},
                     rf"{archive}: truncated or corrupt archive")


def test_cifar10_missing_member(tmp_path, cifar10):
    members = dict(cifar10[1])
    del members["cifar-10-batches-py/data_batch_3"]
    archive = write_tar(tmp_path / "c.tar.gz", members)
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": md5(archive)},
                 "lacks cifar-10-batches-py/data_batch_3")


@pytest.mark.parametrize("member", ["../evil", "/tmp/evil", "cifar-10-batches-py/../../evil"])
def test_path_traversal_member(tmp_path, cifar10, member):
    archive = write_tar(tmp_path / "c.tar.gz", {**cifar10[1], member: b"x"})
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": md5(archive)},
                 f"unsafe member '{member}'")


@pytest.mark.parametrize("kind, target", [(tarfile.SYMTYPE, "../../../etc/passwd"),
                                          (tarfile.SYMTYPE, "/etc/passwd"),
                                          (tarfile.LNKTYPE, "../outside")])
def test_link_out_of_the_archive(tmp_path, cifar10, kind, target):
    link = tarfile.TarInfo("cifar-10-batches-py/link")
    link.type, link.linkname = kind, target
    archive = write_tar(tmp_path / "c.tar.gz", cifar10[1], [link])
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": md5(archive)},
                 "unsafe member 'cifar-10-batches-py/link'")


def test_link_in_place_of_a_batch(tmp_path, cifar10):
    members = dict(cifar10[1])
    del members["cifar-10-batches-py/data_batch_1"]
    link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    link.type, link.linkname = tarfile.SYMTYPE, "data_batch_2"
    archive = write_tar(tmp_path / "c.tar.gz", members, [link])
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": md5(archive)},
                 "data_batch_1 is not a regular file")


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_with_a_forbidden_global(tmp_path, cifar10):
    marker = tmp_path / "pwned"
    batch = py2_pickle({b"data": Evil(marker), b"labels": []})
    archive = write_tar(tmp_path / "c.tar.gz",
                        {**cifar10[1], "cifar-10-batches-py/data_batch_1": batch})
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": md5(archive)},
                 r"data_batch_1: not a CIFAR batch .*forbidden global (posix|os)\.system")
    assert not marker.exists()


def test_pickle_that_is_not_a_batch(tmp_path, cifar10):
    archive = write_tar(tmp_path / "c.tar.gz", {
        **cifar10[1], "cifar-10-batches-py/test_batch": py2_pickle({b"data": [1, 2]})})
    assert_fails(tmp_path, "cifar10", {"source": str(archive), "checksum": md5(archive)},
                 "test_batch: 'data' is not a uint8")


def test_cifar100(tmp_path):
    train_x, train_y = random_images(200, 32), labels_for(200, 100)
    test_x, test_y = random_images(100, 32), labels_for(100, 100)
    names = [f"fine{i}" for i in range(100)]
    archive = write_tar(tmp_path / "cifar-100-python.tar.gz", {
        "cifar-100-python/train": cifar_batch(train_x, train_y, b"fine_labels"),
        "cifar-100-python/test": cifar_batch(test_x, test_y, b"fine_labels"),
        "cifar-100-python/meta": py2_pickle({b"fine_label_names": [n.encode() for n in names],
                                             b"coarse_label_names": [b"c"] * 20}),
    })
    p = prepare(tmp_path, "cifar100", {"source": str(archive), "checksum": md5(archive)})
    assert_matches(p, train_x, train_y, test_x, test_y, names)
    assert p.num_classes == 100 and len(p.val_y) == 20


# --- STL-10 ----------------------------------------------------------------------------------

def stl_bytes(images):
    return images.transpose(0, 3, 2, 1).tobytes()  # per image: channel planes, column-major


def test_stl10(tmp_path):
    train_x, train_y = random_images(20, 96), labels_for(20, 10)
    test_x, test_y = random_images(10, 96), labels_for(10, 10)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    archive = write_tar(tmp_path / "stl10_binary.tar.gz", {
        "stl10_binary/class_names.txt": ("\n".join(names) + "\n").encode(),
        "stl10_binary/fold_indices.txt": b"0 1 2\n",
        "stl10_binary/test_X.bin": stl_bytes(test_x),
        "stl10_binary/test_y.bin": (test_y + 1).astype(np.uint8).tobytes(),
        "stl10_binary/train_X.bin": stl_bytes(train_x),
        "stl10_binary/train_y.bin": (train_y + 1).astype(np.uint8).tobytes(),
        "stl10_binary/unlabeled_X.bin": b"never read",
    })
    p = prepare(tmp_path, "stl10", {"source": str(archive), "checksum": md5(archive)})
    assert_matches(p, train_x, train_y, test_x, test_y, names)
    assert p.image_size == 96 and p.channels == 3


def test_stl10_wrong_sizes(tmp_path):
    archive = write_tar(tmp_path / "stl10_binary.tar.gz", {
        "stl10_binary/class_names.txt": b"a\n" * 10,
        "stl10_binary/test_X.bin": b"\0" * 1000,
        "stl10_binary/test_y.bin": b"\1",
        "stl10_binary/train_X.bin": b"\0" * 27648,
        "stl10_binary/train_y.bin": b"\1",
    })
    assert_fails(tmp_path, "stl10", {"source": str(archive), "checksum": md5(archive)},
                 "test_X.bin: 1000 bytes is not a whole number")


# --- Tiny ImageNet ---------------------------------------------------------------------------

def jpeg(image):
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def decoded(blob):
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


@pytest.fixture
def tinyimagenet(tmp_path):
    """(members, train_x, train_y, test_x, test_y, names) of a 3-class Tiny ImageNet."""
    wnids = ["n03", "n01", "n02"]  # not sorted: classes are numbered in sorted order
    words = "n01\tgoldfish, Carassius auratus\nn02\tsalamander\nn03\tbus, coach\nn09\tother\n"
    members = {"tiny-imagenet-200/wnids.txt": "\n".join(wnids).encode(),
               "tiny-imagenet-200/words.txt": words.encode()}
    train_x, train_y = [], []
    for label, wnid in enumerate(sorted(wnids)):
        for i in range(4):
            image = random_images(1, 64, 1 if (label, i) == (1, 2) else 3)[0]  # one grayscale
            blob = jpeg(image)
            members[f"tiny-imagenet-200/train/{wnid}/images/{wnid}_{i}.JPEG"] = blob
            train_x.append(decoded(blob))
            train_y.append(label)
        members[f"tiny-imagenet-200/train/{wnid}/{wnid}_boxes.txt"] = b"boxes"
    annotations, test_x, test_y = [], [], []
    for i, wnid in enumerate(["n02", "n01", "n03", "n03", "n01", "n02"]):
        blob = jpeg(random_images(1, 64)[0])
        members[f"tiny-imagenet-200/val/images/val_{i}.JPEG"] = blob
        annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
        test_x.append(decoded(blob))
        test_y.append(sorted(wnids).index(wnid))
    members["tiny-imagenet-200/val/val_annotations.txt"] = "\n".join(annotations).encode()
    members["tiny-imagenet-200/test/images/test_0.JPEG"] = jpeg(random_images(1, 64)[0])
    return (members, np.stack(train_x), np.array(train_y), np.stack(test_x), np.array(test_y),
            ["goldfish", "salamander", "bus"])


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return path


def test_tinyimagenet_zip(tmp_path, tinyimagenet):
    members, *arrays = tinyimagenet
    archive = write_zip(tmp_path / "tiny-imagenet-200.zip", members)
    p = prepare(tmp_path, "tinyimagenet", {"source": str(archive), "checksum": md5(archive),
                                           "val_size": 3})
    assert_matches(p, *arrays)
    assert p.image_size == 64 and p.channels == 3 and len(p.val_y) == 3


def test_tinyimagenet_extracted_folder(tmp_path, tinyimagenet):
    members, *arrays = tinyimagenet
    for name, content in members.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    p = prepare(tmp_path, "tinyimagenet", {"source": str(tmp_path), "val_size": 3})
    assert_matches(p, *arrays)


def test_tinyimagenet_path_traversal_and_truncation(tmp_path, tinyimagenet):
    members = tinyimagenet[0]
    archive = write_zip(tmp_path / "bad.zip", {**members, "tiny-imagenet-200/../../evil": b"x"})
    assert_fails(tmp_path, "tinyimagenet", {"source": str(archive), "checksum": md5(archive)},
                 "unsafe member 'tiny-imagenet-200/../../evil'")
    archive = write_zip(tmp_path / "tiny-imagenet-200.zip", members)
    archive.write_bytes(archive.read_bytes()[:-2000])
    with pytest.warns(UserWarning):
        assert_fails(tmp_path, "tinyimagenet", {"source": str(archive), "checksum": False},
                     f"{archive}: truncated or corrupt")


def test_tinyimagenet_corrupt_jpeg(tmp_path, tinyimagenet):
    members = dict(tinyimagenet[0])
    members["tiny-imagenet-200/val/images/val_3.JPEG"] = b"not a jpeg"
    archive = write_zip(tmp_path / "tiny-imagenet-200.zip", members)
    assert_fails(tmp_path, "tinyimagenet", {"source": str(archive), "checksum": md5(archive)},
                 "val/images/val_3.JPEG: not a readable JPEG")


# --- Fashion-MNIST ---------------------------------------------------------------------------

def idx(array):
    magic = 0x800 + array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_fashion(folder, compress=True, **override):
    train_x, train_y = random_images(20, 28, 1), labels_for(20, 10)
    test_x, test_y = random_images(10, 28, 1), labels_for(10, 10)
    content = {"train-images-idx3-ubyte": idx(train_x[..., 0]),
               "train-labels-idx1-ubyte": idx(train_y.astype(np.uint8)),
               "t10k-images-idx3-ubyte": idx(test_x[..., 0]),
               "t10k-labels-idx1-ubyte": idx(test_y.astype(np.uint8)), **override}
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for stem, blob in content.items():
        path = folder / (f"{stem}.gz" if compress else stem)
        path.write_bytes(gzip.compress(blob) if compress else blob)
        checksums[stem] = md5(path)
    return checksums, (train_x, train_y, test_x, test_y)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist(tmp_path, compress):
    checksums, arrays = write_fashion(tmp_path / "f", compress)
    p = prepare(tmp_path, "fashion_mnist", {"source": str(tmp_path / "f"),
                                            "checksum": checksums})
    assert_matches(p, *arrays, fashion_mnist.CLASS_NAMES)
    assert (p.image_size, p.channels) == (28, 1)


def test_fashion_mnist_checks(tmp_path):
    checksums, _ = write_fashion(tmp_path / "f")
    source = str(tmp_path / "f")
    assert_fails(tmp_path, "fashion_mnist", {"source": source},
                 "train-images-idx3-ubyte.gz: does not match the published md5")
    assert_fails(tmp_path, "fashion_mnist", {"source": source, "checksum": "0" * 32},
                 "checksum must map", ConfigError)
    bad_magic = idx(np.zeros(3, np.uint8)).replace(b"\x08\x01", b"\x08\x02", 1)
    checksums, _ = write_fashion(tmp_path / "g", **{"t10k-labels-idx1-ubyte": bad_magic})
    assert_fails(tmp_path, "fashion_mnist", {"source": str(tmp_path / "g"),
                                             "checksum": checksums}, "not an idx file")
    short = idx(np.zeros((3, 28, 28), np.uint8))[:-1]
    checksums, _ = write_fashion(tmp_path / "h", **{"t10k-images-idx3-ubyte": short})
    assert_fails(tmp_path, "fashion_mnist", {"source": str(tmp_path / "h"),
                                             "checksum": checksums}, "truncated or damaged")
    (tmp_path / "h" / "t10k-images-idx3-ubyte.gz").unlink()
    assert_fails(tmp_path, "fashion_mnist", {"source": str(tmp_path / "h"),
                                             "checksum": checksums},
                 "lacks t10k-images-idx3-ubyte.gz")


@pytest.mark.skipif(not fashion_mnist.DEBIAN.is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no resources/ here: the Debian folder is the default source
    p = prepare(tmp_path, "fashion_mnist", {})
    assert len(p.train_y) + len(p.val_y) == 60000 and len(p.test_y) == 10000
    assert p.train_x.shape[1:] == (28, 28, 1)
    assert p.attrs["source"] == str(fashion_mnist.DEBIAN)
