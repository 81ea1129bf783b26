"""timm's architecture names, known without importing torch into this process.

A study that names `timm/<architecture>` is checked when it loads (by Snakemake's parse on a
login node, by `imgzoo check`), before any job. timm's list of names exists only once timm is
imported, and importing timm imports torch (5.6 s, `python -X importtime`); so a child process
lists them once per timm version and the list is cached in a file
(`$XDG_CACHE_HOME/imgzoo/timm-<version>-architectures.json`, default `~/.cache/imgzoo/`).
Afterwards a check reads that file (milliseconds). Studies without timm models never ask.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from imgzoo.atomic import atomic_write_text
from imgzoo.errors import ConfigError, ImgzooError

LIST_ARCHITECTURES = "import json, timm; print(json.dumps(sorted(timm.list_models())))"
LIST_TIMEOUT_S = 300


def cache_file(version: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "imgzoo" / f"timm-{version}-architectures.json"


def timm_version() -> str:
    """The installed timm's version, read from its metadata (timm is not imported)."""
    try:
        return importlib.metadata.version("timm")
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("models 'timm/...' need timm, which is not installed") from None


@functools.cache
def architectures() -> frozenset[str]:
    """Every architecture name `timm.list_models()` gives (cached per timm version)."""
    cache = cache_file(timm_version())
    try:
        return frozenset(json.loads(cache.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass  # not listed yet for this version (or a damaged cache: list again)
    names = _list_in_child_process()
    try:
        atomic_write_text(cache, json.dumps(names))
    except OSError:
        pass  # a read-only home: list again next time
    return frozenset(names)


def _list_in_child_process() -> list[str]:
    try:
        child = subprocess.run(
            [sys.executable, "-c", LIST_ARCHITECTURES],
            capture_output=True, text=True, timeout=LIST_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ImgzooError(f"listing timm's architectures took over {LIST_TIMEOUT_S} s") from None
    if child.returncode != 0:
        reason = (child.stderr.strip().splitlines() or ["no message"])[-1]
        raise ImgzooError(f"cannot list timm's architectures ({reason})")
    return json.loads(child.stdout)


def check(architecture: str, known: frozenset[str] | None = None) -> None:
    """ConfigError naming the closest of timm's names unless timm has `architecture` (a
    pretrained tag after a dot, `vit_base_patch16_224.augreg_in21k`, is allowed). `known`: the
    names, where timm is imported already (in a job); else `architectures()`."""
    known = architectures() if known is None else known
    if architecture.split(".", 1)[0] in known:
        return
    close = difflib.get_close_matches(architecture, known, n=3, cutoff=0.5)
    hint = (f"did you mean {', '.join(f'timm/{c}' for c in close)}?" if close
            else f"timm {timm_version()} has none like it: timm.list_models() lists them")
    raise ConfigError(f"unknown timm architecture '{architecture}' ({hint})")
