"""The GPUs of this machine for local runs: how many there are (without torch, for the workflow's
`gpu` resource) and which one a run takes.

Locally Snakemake starts as many training runs as it has cores; on a GPU machine they would all
train on cuda:0 at once. So the workflow declares a `gpu` resource (one per run that wants a GPU)
and gives it as many as this machine has (`count_here`), and each run claims a GPU of its own
(`claim`): the first that no other run of this user holds, by a lock the system drops when the
process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def count_here() -> int:
    """The GPUs a process started here would see: CUDA_VISIBLE_DEVICES where set, else the
    devices `nvidia-smi -L` lists; 0 without NVIDIA's driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() not in ("", "-1")])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def local_limit(given: dict) -> int:
    """How many GPU runs Snakemake may start at once here: what `--resources gpu=N` gave, else
    the GPUs this machine has, else no limit (a machine without GPUs trains on its CPUs)."""
    if "gpu" in given:
        return given["gpu"]
    return count_here() or 1_000_000


_held = []  # the claimed GPU's lock stays open, and so held, for the life of the process


def claim(devices: int, folder: Path | None = None) -> int:
    """The index (0 .. devices-1) of a GPU no other process of this user has claimed; the first
    one when all are taken (Snakemake's `gpu` resource keeps that from happening)."""
    folder = folder or Path(tempfile.gettempdir())
    # the locks name the machine's GPU, whatever CUDA_VISIBLE_DEVICES makes its index here
    ids = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    for index in range(devices):
        gpu = ids[index] if index < len(ids) else str(index)
        handle = open(folder / f"imgzoo-gpu{gpu}-{os.getuid()}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        return index
    return 0
