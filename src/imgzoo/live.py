"""What a run shows while it trains: `progress.json` beside its checkpoint, and TensorBoard files.

The HDF5 run log is the record, written once when the run ends. These are views of a run that is
still going, for `imgzoo status`, the partial tables and curves, and TensorBoard:

- `progress.json` in the run folder, rewritten atomically after every epoch (and once at the
  end): the run's spec, its run-log attributes so far (the same builder as the run log's), who
  runs it (host, process, SLURM jobs) and the per-epoch history so far. Small, torch-free to
  read, safe to read at any moment.
- TensorBoard event files in the run folder's `tensorboard/` (when the `tensorboard` package is
  installed and `IMGZOO_TENSORBOARD` is not `0`): `tensorboard --logdir results/<study>/runs`.

Importing this module imports no torch (the writer imports it where a run has it anyway).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np

from imgzoo import runlog
from imgzoo.atomic import atomic_write_text
from imgzoo.paths import PROGRESS

FORMAT = "imgzoo.progress"
# 2: the spec in three parts, `slurm_job_ids` (every job that ran the run), `wall_time_s`.
VERSION = 2
TENSORBOARD_DIR = "tensorboard"
# TensorBoard tag of each per-epoch series (the run log's names; grouped into charts by prefix).
TENSORBOARD_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "test_loss": "loss/test",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "train_subset_acc": "accuracy/train_subset",
    "lr": "lr",
    "train_time": "time/train_s",
    "epoch_time": "time/epoch_s",
    "images_per_s": "time/images_per_s",
}


def write_progress(run_dir, spec: dict, epochs: dict, *, attrs: dict,
                   evaluations: dict | None = None) -> None:
    """Rewrite `run_dir/progress.json`: the run's spec (`RunSpec.to_dict()`), its run-log
    attributes so far (`imgzoo.runlog.run_attrs`: status running, or the run log's completed /
    diverged at the end), its per-epoch history so far and, for a run that evaluates every N
    steps, its `evaluations` so far."""
    progress = {
        "format": FORMAT,
        "version": VERSION,
        "spec": spec,
        "attrs": attrs,
        "updated": runlog.now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "history": {k: [float(v) for v in epochs.get(k, [])] for k in runlog.EPOCH_SERIES},
    }
    if evaluations:
        progress["evaluations"] = {
            k: [float(v) for v in evaluations.get(k, [])] for k in runlog.EVALUATION_SERIES
        }
    atomic_write_text(Path(run_dir) / PROGRESS, json.dumps(progress))


def read_progress(run_dir) -> dict | None:
    """The run's progress.json, or None where there is none or it is not one of this version (a
    reader never fails on a run that is being written: the file is replaced atomically)."""
    path = Path(run_dir) / PROGRESS
    try:
        progress = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(progress, dict) or progress.get("format") != FORMAT:
        return None
    if progress.get("version") != VERSION:
        return None
    return progress


def partial_log(run_dir) -> runlog.RunLog | None:
    """An unfinished run as a RunLog (status `running`, the epochs it has), from its
    progress.json; None where the run has none. Tables and curves then show it beside the
    finished runs."""
    progress = read_progress(run_dir)
    if progress is None:
        return None
    history = progress["history"]
    epochs = {k: np.asarray(history[k], dtype=np.float64) for k in runlog.EPOCH_SERIES}
    epochs["epoch"] = epochs["epoch"].astype(np.int64)
    evaluations = {
        k: np.asarray(v, dtype=np.int64 if k in runlog.INTEGER_SERIES else np.float64)
        for k, v in progress.get("evaluations", {}).items()
    }
    return runlog.RunLog(dict(progress["attrs"]), epochs, path=Path(run_dir) / PROGRESS,
                         evaluations=evaluations)


def tensorboard_enabled() -> bool:
    if os.environ.get("IMGZOO_TENSORBOARD", "1") == "0":
        return False
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """Per-epoch scalars of one run as TensorBoard event files in `run_dir/tensorboard/`.

    A resumed run starts a new event file and rewrites the epochs it has: TensorBoard shows the
    newest value of each step, so the curves stay those of one run.
    """

    def __init__(self, run_dir):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))

    def add_epochs(self, history: dict, first: int = 0) -> None:
        """Write the epochs history[...][first:]."""
        for i in range(first, len(history["epoch"])):
            step = int(history["epoch"][i])
            for key, tag in TENSORBOARD_TAGS.items():
                self.writer.add_scalar(tag, float(history[key][i]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
