"""Files that appear only when complete: write to a temporary name beside the target, then rename.

Snakemake, the report and every reader then never see a half-written output, and a killed or
failed write (a full disk, say) leaves the previous file intact. The temporary name starts with a
dot and ends in `.<pid>.tmp`, so `stale_temporaries` can find what a killed writer left behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_output(path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (its folder created), renamed to `path` only when the
    block succeeds; removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def stale_temporaries(path) -> list[Path]:
    """Temporary files of `path` that a killed writer left behind."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))
