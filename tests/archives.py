"""Tiny archives in the official on-disk formats of the real datasets, for tests."""

import io
import pickle
import struct
import tarfile

import numpy as np


def write_tar(path, members, extra=()):
    """A .tar.gz with `members` {name: bytes} and `extra` TarInfo members (links)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for info in extra:
            tar.addfile(info)
    return path


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with every string as a Python 2 `str` (BINSTRING), as in the official batches
    (numpy's own dtype and array state included)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj):
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def cifar_batch(images, labels, labels_key=b"labels"):
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # R plane, G, B
    blob = py2_pickle(
        {
            b"batch_label": b"batch",
            labels_key: [int(v) for v in labels],
            b"data": rows,
            b"filenames": [b"%d.png" % i for i in range(len(images))],
        }
    )
    # The official batches predate numpy 2 and name numpy.core, not numpy._core.
    return blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def cifar10_members(train_x, train_y, test_x, test_y):
    """The members of cifar-10-python.tar.gz for these images (five equal training batches)."""
    per_batch = len(train_x) // 5
    members = {
        f"cifar-10-batches-py/data_batch_{i + 1}": cifar_batch(
            train_x[per_batch * i : per_batch * (i + 1)],
            train_y[per_batch * i : per_batch * (i + 1)],
        )
        for i in range(5)
    }
    members["cifar-10-batches-py/test_batch"] = cifar_batch(test_x, test_y)
    members["cifar-10-batches-py/batches.meta"] = py2_pickle(
        {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": per_batch}
    )
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    return members


def learnable_images(n, classes, size=32, seed=0):
    """(images uint8 N×size×size×3, labels): each class a colour plus noise, so models learn."""
    colours = np.random.default_rng(12345).integers(30, 226, size=(classes, 3))  # every split
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = colours[labels][:, None, None, :] + rng.normal(0, 25, size=(n, size, size, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)
