"""Dataset names and the reader module behind each; modules are imported only when used.

A built-in dataset is known by its name alone. A dataset of the study's own is named in the
study's `data:` section with a `format:` (an image folder, a NumPy archive); its name is the
study's choice, so it must not shadow a built-in one.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from imgzoo.errors import ConfigError, unknown_name

READERS = {
    "digits": "imgzoo.data.readers.digits",
    "synthetic": "imgzoo.data.readers.synthetic",
    "cifar10": "imgzoo.data.readers.cifar",
    "cifar100": "imgzoo.data.readers.cifar",
    "stl10": "imgzoo.data.readers.stl10",
    "tinyimagenet": "imgzoo.data.readers.tinyimagenet",
    "fashion_mnist": "imgzoo.data.readers.fashion_mnist",
}
FORMATS = {
    "imagefolder": "imgzoo.data.readers.imagefolder",
    "npz": "imgzoo.data.readers.npz",
}
# A dataset's name is a path component and a Snakemake wildcard value ({dataset} in the rules'
# patterns, constrained to this): other characters would make paths the workflow cannot match.
NAME_PATTERN = "[A-Za-z0-9_]+"


def known_datasets() -> list[str]:
    """The built-in datasets."""
    return sorted(READERS)


def dataset_names(data_section: dict | None) -> list[str]:
    """Every dataset a study may name: the built-in ones and those its `data:` section defines
    with a `format:` (whether that definition is valid is `checked_options`' question)."""
    own = [name for name, options in (data_section or {}).items()
           if isinstance(options, dict) and "format" in options]
    return sorted({*READERS, *own})


def reader(name: str, options: dict | None = None) -> ModuleType:
    """The reader module for dataset `name` with `options` (its `format:` picks one for a
    dataset of the study's own); ConfigError naming the dataset otherwise."""
    fmt = (options or {}).get("format")
    if fmt is None:
        if name not in READERS:
            raise ConfigError(f"{unknown_name('dataset', name, READERS)}; a dataset of your own "
                              f"needs a format: ({', '.join(FORMATS)}) in data.{name}")
        return importlib.import_module(READERS[name])
    if name in READERS:
        raise ConfigError(f"dataset '{name}': the name of a built-in dataset, which takes no "
                          f"format:; give your own dataset another name (e.g. my_{name})")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(f"dataset '{name}': a dataset's name may use only letters, digits "
                          f"and _")
    if fmt not in FORMATS:
        raise ConfigError(f"dataset '{name}': unknown format {fmt!r} (known: "
                          f"{', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[fmt])
