"""The best-validation model's weights on disk, `model_best.pt`, kept consistent with the epoch
checkpoint that names its epoch (or step).

The weights are written after the checkpoint of their epoch, so that a kill between the two
leaves the checkpoint's weights as the only copy of the best ones (`settle`). With step
evaluations, a new best inside the epoch under way waits in `model_best.step<N>.pt` until the
epoch's checkpoint names it (`promote_pending`): a run cut short inside an epoch resumes with the
best model its checkpoint names, and the cut epoch's pending file is dropped.
"""

from __future__ import annotations

from pathlib import Path

from imgzoo.errors import CheckpointError
from imgzoo.paths import BEST_MODEL, BEST_MODEL_PENDING, CHECKPOINT
from imgzoo.training import checkpoint

PENDING_FILES = BEST_MODEL_PENDING.format(step="*")


def pending(out_dir: Path) -> list[Path]:
    return sorted(Path(out_dir).glob(PENDING_FILES))


def save_pending(out_dir: Path, step: int, model) -> None:
    """The weights of the best evaluation so far, after `step`, pending (its epoch's checkpoint
    is not written yet); an earlier best of the same epoch is dropped."""
    path = Path(out_dir) / BEST_MODEL_PENDING.format(step=step)
    checkpoint.save_atomic(model.state_dict(), path)
    for earlier in pending(out_dir):
        if earlier != path:
            earlier.unlink(missing_ok=True)


def promote_pending(out_dir: Path, best_step: int) -> None:
    """The pending weights of the evaluation after `best_step` (the history's best, as the
    checkpoint just written or read names it) become model_best.pt; any other pending file is
    from an epoch no checkpoint holds (cut short), and is dropped."""
    best = Path(out_dir) / BEST_MODEL_PENDING.format(step=best_step)
    if best_step > 0 and best.exists():
        best.replace(Path(out_dir) / BEST_MODEL)
    for other in pending(out_dir):
        other.unlink(missing_ok=True)


def settle(out_dir: Path, history, epoch: int, model) -> None:
    """model_best.pt as the checkpoint of `epoch` (`history` its state) names it, after a kill
    between the checkpoint and the weights: they are in the checkpoint (the best at an epoch's
    end) or in the pending file of the best evaluation (inside the epoch)."""
    promote_pending(out_dir, history.best_step)
    if history.best_epoch == epoch and not history.step_evaluations:
        checkpoint.save_atomic(model.state_dict(), Path(out_dir) / BEST_MODEL)
    if history.best_epoch > 0 and not (Path(out_dir) / BEST_MODEL).exists():
        raise CheckpointError(
            f"{Path(out_dir) / BEST_MODEL}: missing, and {CHECKPOINT} needs it; delete "
            f"{Path(out_dir) / CHECKPOINT} to start the run afresh"
        )
