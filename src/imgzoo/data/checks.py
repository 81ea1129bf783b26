"""What a study asks of a dataset before any job runs: is it one, with these options, and is its
source there? Cheap and torch-free: existence checks only, no file is opened or decoded."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from imgzoo.data import options as opts
from imgzoo.data import registry
from imgzoo.errors import DataError


def checked_options(name: str, options: dict | None) -> dict:
    """The dataset's options with their defaults, every key and value checked (ConfigError naming
    the bad one): what `prepare` reads, and what a study checks before any job runs. A dataset of
    the study's own (with a `format:`) gets that format's options."""
    module = registry.reader(name, options)
    options = opts.resolve(name, module.OPTIONS, options)
    module.check_options(name, options)
    return options


def source_problem(name: str, options: dict | None) -> str | None:
    """Why the dataset cannot be prepared for want of its files, in one line, or None (datasets
    generated or bundled, like digits and synthetic, never lack theirs)."""
    module = registry.reader(name, options)
    problem = getattr(module, "source_problem", None)
    return problem(name, checked_options(name, options)) if problem else None


def image_size(name: str, options: dict | None) -> int | None:
    """The side of the dataset's prepared images where it is known before preparation (a
    built-in dataset's, or the `image_size` option), else None (a NumPy archive's)."""
    module = registry.reader(name, options)
    size = getattr(module, "image_size", None)
    return size(checked_options(name, options)) if size else None


def require_sources(datasets: dict[str, dict],
                    prepared_path: Callable[[str], str | os.PathLike]) -> None:
    """DataError, one line, when a dataset of `datasets` (name -> options) lacks its source and
    has no prepared file at `prepared_path(name)` either (then the source is not needed)."""
    problems = {
        name: problem for name, options in datasets.items()
        if not Path(prepared_path(name)).exists()
        and (problem := source_problem(name, options)) is not None
    }
    if problems:
        first, *others = problems
        more = f" (and the sources of {', '.join(others)})" if others else ""
        raise DataError(problems[first] + more)
