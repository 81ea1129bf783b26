"""One module per dataset or format, each turning its source into a `Raw` set; `prepare` does
the rest.

A reader module has `OPTIONS` (its own options with defaults, beside data.options.COMMON),
`check_options(name, options)` (ConfigError for a bad value; cheap, run when a study is checked)
and `read(name, options) -> Raw` (`name` is the dataset's name, for messages and for modules that
read more than one dataset). A reader with files to find also has `source_problem(name, options)
-> str | None`: why its source is missing, in one line, from existence checks alone (a study
asks it before any job). Readers import their heavy dependencies (scikit-learn, PIL) inside
`read`, so listing datasets costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Raw:
    """A dataset as read: official train and test splits (uint8 N×H×W×C, int64 labels).

    `train_index` / `test_index` give each row's position in the official source; they default
    to 0..N-1 and differ only where the reader itself carves the test split (digits, an image
    folder without test/). `preparation` says what reading did that the images do not show (where
    the test split came from, files ignored), for the prepared file; `skipped_files` lists the
    unreadable files left out ("path: reason"), where the options allow that.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: list[str]
    source: str
    source_sha256: str
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None
    preparation: dict = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.train_index is None:
            self.train_index = np.arange(len(self.train_y), dtype=np.int64)
        if self.test_index is None:
            self.test_index = np.arange(len(self.test_y), dtype=np.int64)
