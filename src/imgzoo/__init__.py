"""imgzoo: train and compare image-classification models with Snakemake, locally or on SLURM."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.cache
def version() -> str:
    """The version of the code that is running, for the run logs' provenance.

    From a git checkout: the package version, the commit and whether tracked files had changes
    (`0.1.0+g1a2b3c4`, `0.1.0+g1a2b3c4.dirty`), so a log says which code made it. Elsewhere (an
    installed package, no git, git too slow): the package version alone. One `git describe` at
    most per process.
    """
    checkout = Path(__file__).resolve().parents[2]  # src/imgzoo/__init__.py -> the checkout
    if not (checkout / ".git").exists():  # a folder, or a file in a git worktree
        return __version__
    try:
        described = subprocess.run(
            # --exclude=*: ignore tags, so the answer is always the commit (+ "-dirty")
            ["git", "-C", str(checkout), "describe", "--always", "--dirty", "--exclude=*"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    if not described:
        return __version__
    commit = described.removesuffix("-dirty")
    return f"{__version__}+g{commit}" + (".dirty" if described.endswith("-dirty") else "")
