"""What a run keeps on disk: the epoch checkpoint it resumes from, and weights files.

Every file is written to a temporary name in the same folder and renamed, so a kill or a full
disk leaves the previous complete file (or none), never a truncated one. Checkpoints are loaded
with `weights_only=True` (tensors and plain Python values only: loading runs no pickled code)
and only resume a run whose settings (`RunSpec.key()`: what decides its numbers, not its
resources) wrote them.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from imgzoo.atomic import atomic_output, stale_temporaries
from imgzoo.errors import CheckpointError
from imgzoo.spec import RunId, RunSpec, Settings

FORMAT = "imgzoo.checkpoint"
# 3: keyed by the run's settings (resources left out); the history's `started`, `wall_time_s`.
# 2: the history holds the best-validation epoch (model_best.pt); keyed by the whole spec.
VERSION = 3


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save `obj` to `path` through a temporary file and a rename."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def remove_temporaries(folder: Path, names) -> None:
    """Temporary files of saves that a kill cut short."""
    for name in names:
        for stale in stale_temporaries(folder / name):
            stale.unlink(missing_ok=True)


def save(path, *, spec: RunSpec, epoch: int, model, optimizer, history: dict) -> None:
    """The state at the end of `epoch`: enough to run epoch + 1 as if nothing had stopped."""
    save_atomic(
        {
            "format": FORMAT,
            "version": VERSION,
            "spec": spec.key(),
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": history,
        },
        path,
    )


def load(path, spec: RunSpec) -> dict | None:
    """The checkpoint at `path` (keys `epoch`, `model`, `optimizer`, `history`), or None when
    there is none or it belongs to other settings (with a warning: the run starts afresh).
    CheckpointError naming the file when it is unreadable or not an imgzoo checkpoint."""
    path = Path(path)
    if not path.exists():
        return None
    state = _load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an imgzoo checkpoint; delete it to start afresh")
    if state.get("version") == 2:
        state = _from_v2(state)
    if state.get("version") != VERSION:
        warnings.warn(
            f"{path} was written by another version of imgzoo: starting afresh", stacklevel=2
        )
        return None
    if state["spec"] != spec.key():
        warnings.warn(f"{path} was written with other settings: starting afresh", stacklevel=2)
        return None
    return state


def _from_v2(state: dict) -> dict:
    """A version-2 checkpoint (keyed by the whole spec, resources included) as version 3, so that
    a run interrupted before the upgrade resumes where its settings are unchanged."""
    old = json.loads(state["spec"])
    settings = Settings.from_dict({k: old[k] for k in ("family", "model_args", "train", "data")})
    key = RunSpec(RunId("", old["experiment"], old["dataset"], old["seed"]), settings).key()
    history = dict(state["history"])
    history["started"] = history.pop("start_time", None)
    return {**state, "version": VERSION, "spec": key, "history": history}


def load_weights(path) -> dict:
    """A state_dict saved by `save_atomic(model.state_dict(), path)`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: missing; delete the run's checkpoint to start afresh")
    return _load(path, "weights file")


def _load(path: Path, what: str):
    # Into host memory: load_state_dict copies weights to the model's device and moves an
    # optimizer's state beside its parameters, but leaves Adam's step counters on the CPU, where
    # the optimizer reads them without waiting for the GPU (on the GPU they would cost a sync
    # per parameter per step for the rest of the run).
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: not a readable imgzoo {what} ({e.__class__.__name__}); "
            "delete it to start the run afresh"
        ) from None
