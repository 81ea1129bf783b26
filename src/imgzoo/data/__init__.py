"""Datasets: prepare one into an HDF5 file of uint8 images, then load it for training.

Imports only numpy, h5py and the standard library (readers add scikit-learn or PIL when used),
never torch. The file format is in `store`; each dataset's reader in `readers/`.
"""

from imgzoo.data.prepare import checked_options, prepare
from imgzoo.data.registry import known_datasets
from imgzoo.data.store import Prepared, load

__all__ = ["Prepared", "checked_options", "known_datasets", "load", "prepare"]
