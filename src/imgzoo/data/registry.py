"""Dataset names and the reader module behind each; modules are imported only when used."""

from __future__ import annotations

import importlib
from types import ModuleType

from imgzoo.errors import unknown_name

READERS = {
    "digits": "imgzoo.data.readers.digits",
    "synthetic": "imgzoo.data.readers.synthetic",
    "cifar10": "imgzoo.data.readers.cifar",
    "cifar100": "imgzoo.data.readers.cifar",
    "stl10": "imgzoo.data.readers.stl10",
    "tinyimagenet": "imgzoo.data.readers.tinyimagenet",
    "fashion_mnist": "imgzoo.data.readers.fashion_mnist",
}


def known_datasets() -> list[str]:
    return sorted(READERS)


def reader(name: str) -> ModuleType:
    """The reader module for `name`; ConfigError listing the closest names if unknown."""
    if name not in READERS:
        raise unknown_name("dataset", name, READERS)
    return importlib.import_module(READERS[name])
