"""Unpickling the CIFAR batches without letting a pickle run code.

A pickle may name any importable callable, and calling it is how it builds objects, so a
hand-made "data_batch_1" could run `os.system`. The official batches only need the builtin
containers (which pickle builds without globals) and numpy's array reconstruction; every other
global is refused.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from imgzoo.errors import DataError

try:  # numpy >= 2 moved the implementation; the files name the old path
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


def loads(data: bytes, where: str) -> dict:
    """The dict pickled in `data` (Python 2 pickles: strings come back as bytes).

    DataError naming `where` if the pickle is corrupt, names a forbidden global or holds
    anything but a dict.
    """
    try:
        obj = _Restricted(io.BytesIO(data), encoding="bytes").load()
    # A damaged pickle can fail in many ways (EOFError, ValueError, KeyError, ...); all of them
    # mean the same thing to the user: this file is not a CIFAR batch.
    except Exception as e:
        raise DataError(f"{where}: not a CIFAR batch ({e.__class__.__name__}: {e}); download "
                        f"the archive again") from e
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR batch (a pickled {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
