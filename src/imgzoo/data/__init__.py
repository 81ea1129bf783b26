"""Datasets: prepare one into an HDF5 file of uint8 images, then load it for training.

Imports only numpy, h5py and the standard library (readers add scikit-learn or PIL when used),
never torch. The file format is in `store`; each dataset's or format's reader in `readers/`;
what a study asks before any job (`checked_options`, `source_problem`) in `checks`.
"""

from imgzoo.data.checks import checked_options, image_size, require_sources, source_problem
from imgzoo.data.prepare import prepare
from imgzoo.data.registry import dataset_names, known_datasets
from imgzoo.data.store import Prepared, load

__all__ = [
    "Prepared", "checked_options", "dataset_names", "image_size", "known_datasets", "load",
    "prepare",
    "require_sources", "source_problem",
]
