"""One training run, start to end: `train(spec, data_path, out_dir)` (`spec`: imgzoo.spec.RunSpec).

The parts live in `imgzoo.training` (the data on the device, the network, the step, evaluation,
the checkpoint, the history); this module wires them into the story of one run. It checkpoints
atomically after every epoch and resumes to the bit: every random draw of an epoch comes from
generators seeded by (seed, epoch), and the checkpoint holds the model, optimizer and history at
the epoch boundary, so epoch k+1 after a restart sees exactly the state and random numbers it
would have seen anyway.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from imgzoo import data, live, runlog
from imgzoo.errors import CheckpointError, RunFailed
from imgzoo.models import first_layer_tiles
from imgzoo.paths import BEST_MODEL, CHECKPOINT, METRICS, MODEL
from imgzoo.progress import Progress
from imgzoo.spec import RunSpec
from imgzoo.training import checkpoint
from imgzoo.training.device import configure, select_device, synchronize
from imgzoo.training.device_data import TRAIN_SUBSET, DeviceData
from imgzoo.training.evaluate import confusion_matrix, eval_batch_size, evaluate
from imgzoo.training.graphed_step import GraphedStep
from imgzoo.training.history import History, run_log
from imgzoo.training.network import Network, build_network
from imgzoo.training.step import EpochResult, Preempted, TrainStep, train_epoch

__all__ = ["CHECKPOINT", "Preempted", "RunParts", "build_parts", "train"]


@dataclass
class RunParts:
    network: Network
    data: DeviceData
    step: TrainStep
    eval_batch_size: int
    graphed_step: GraphedStep  # what the epochs call: `step`, or its CUDA graph (cuda_graphs)


def build_parts(spec: RunSpec, prepared, device: torch.device) -> RunParts:
    """The parts a run of `spec` trains with, on the prepared dataset (the benchmark builds its
    parts here too, so that it measures what a run does)."""
    cfg = spec.train
    torch.manual_seed(spec.id.seed)  # the model's initial weights
    network = build_network(spec.settings, prepared, device)
    device_data = DeviceData(
        prepared,
        device,
        seed=spec.id.seed,
        batch_size=cfg["batch_size"],
        augmentation=cfg["augment"],
        train_subset_size=cfg["train_subset_size"],
        normalize=network.normalize,
        channels_last=network.channels_last,
        crop_padding=cfg["crop_padding"],
    )
    step = TrainStep(network, cfg, steps_per_epoch=device_data.steps_per_epoch, device=device)
    return RunParts(network, device_data, step, eval_batch_size(cfg, device),
                    GraphedStep(step, device_data, cfg["cuda_graphs"]))


def train(
    spec: RunSpec,
    data_path,
    out_dir,
    *,
    threads: int | None = None,
    stop_flag=None,
    progress: Progress | None = None,
    compile_cache: str | os.PathLike | None = None,
    gpu_mem_fraction: float | None = None,
) -> runlog.RunLog:
    """Run (or resume) one training run and write its metrics.h5; returns the log.

    `stop_flag()`, asked before every step, makes the run raise Preempted when true (the last
    finished epoch is on disk); `progress` shows the epochs (default: a bar or lines on stderr);
    `compile_cache`: where torch.compile keeps its kernels (with `compile: true`), so that the
    other runs of a study and a requeued attempt do not compile them again; `gpu_mem_fraction`:
    the share of the GPU's memory this process may allocate (runs packed on one GPU).
    """
    began = time.monotonic()
    cfg, out_dir = spec.train, Path(out_dir)
    if cfg["compile"] and compile_cache:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(compile_cache).absolute()))
    progress = progress or Progress(cfg["epochs"])
    device = select_device(cfg["device"])
    configure(device, threads, deterministic=cfg["deterministic"], memory_fraction=gpu_mem_fraction)

    # The dataset on the device, the model (its initial weights from the run's seed), the step.
    prepared = data.load(data_path)
    with out_of_memory(spec, "setup"):
        parts = build_parts(spec, prepared, device)
    network = parts.network

    # Where an earlier attempt stopped, or the start.
    out_dir.mkdir(parents=True, exist_ok=True)
    history, first_epoch = _resume(spec, out_dir, parts, progress)
    history.begin_attempt(os.environ.get("SLURM_JOB_ID"), began)

    # What the run shows while it goes: progress.json, TensorBoard files (imgzoo.live).
    tensorboard = live.TensorBoardLog(out_dir) if live.tensorboard_enabled() else None
    status, diverged_epoch = _epochs(spec, parts, history, first_epoch, out_dir,
                                     stop_flag=stop_flag, progress=progress, shown=tensorboard)

    # The best-validation model, which the log's confusion matrix and first layer describe, as
    # its headline accuracy does.
    log = _final_log(spec, parts, prepared, history, out_dir, device,
                     status=status, diverged_epoch=diverged_epoch)
    runlog.write(out_dir / METRICS, log)
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    _show(spec, out_dir, history, network, tensorboard, status=status)
    if tensorboard is not None:
        tensorboard.close()
    return log


def _epochs(spec: RunSpec, parts: RunParts, history: History, first_epoch: int, out_dir: Path,
            *, stop_flag, progress, shown) -> tuple[str, int]:
    """Train the epochs from `first_epoch` on, each checkpointed and shown (progress.json,
    TensorBoard `shown`) as it ends; (status, the epoch it diverged in or -1)."""
    network, step, device = parts.network, parts.step, parts.data.device
    with out_of_memory(spec, "training", f"batch_size {spec.train['batch_size']}"):
        history.add_capture_time(parts.graphed_step.prepare(progress.note))  # once per attempt
    for epoch in range(first_epoch, spec.train["epochs"] + 1):
        progress.start_epoch(epoch)
        t0 = time.perf_counter()
        result = _train_epoch(spec, parts, epoch, stop_flag, progress)
        synchronize(device)
        train_time = time.perf_counter() - t0
        if not math.isfinite(result.loss):
            _diverged(spec, epoch, progress)
            return "diverged", epoch
        with out_of_memory(spec, "evaluation", f"eval_batch_size {parts.eval_batch_size}"):
            row = _epoch_row(epoch, result, parts, train_time)
        row["epoch_time"] = time.perf_counter() - t0  # training and evaluation
        improved = history.add_epoch(row, result.step_losses, result.step_lrs)
        progress.end_epoch(row)
        checkpoint.save(
            out_dir / CHECKPOINT,
            spec=spec,
            epoch=epoch,
            model=network.model,
            optimizer=step.optimizer,
            history=history.state(),
        )
        if improved:  # after the checkpoint that names its epoch (see _resume)
            checkpoint.save_atomic(network.model.state_dict(), out_dir / BEST_MODEL)
        _show(spec, out_dir, history, network, shown)
    return "completed", -1


def _final_log(spec: RunSpec, parts: RunParts, prepared, history: History, out_dir: Path,
               device, *, status: str, diverged_epoch: int) -> runlog.RunLog:
    """The run log: the final weights saved, then the best-validation model's test predictions
    and first layer."""
    network = parts.network
    checkpoint.save_atomic(network.model.state_dict(), out_dir / MODEL)
    if history.best_epoch > 0:
        network.model.load_state_dict(checkpoint.load_weights(out_dir / BEST_MODEL))
    with out_of_memory(spec, "evaluation", f"eval_batch_size {parts.eval_batch_size}"):
        test = evaluate(network.model, parts.data, "test", parts.eval_batch_size, predictions=True)
    return run_log(
        spec,
        history,
        status=status,
        diverged_epoch=diverged_epoch,
        num_params=network.num_params,
        device=device,
        confusion=confusion_matrix(prepared.test_y, test.predictions, prepared.num_classes),
        class_names=prepared.class_names,
        first_layer=first_layer_tiles(network.model),
    )


def _show(spec: RunSpec, out_dir, history: History, network, tensorboard,
          status="running") -> None:
    """The epoch just finished (or the end, with the run's final status) in progress.json and
    TensorBoard."""
    attrs = history.attrs(spec, num_params=network.num_params, status=status)
    live.write_progress(out_dir, spec.to_dict(), history.epochs, attrs=attrs)
    if tensorboard is not None and status == "running":
        tensorboard.add_epochs(history.epochs, first=history.epochs_completed - 1)


def _resume(spec, out_dir: Path, parts: RunParts, progress) -> tuple[History, int]:
    """(history, first epoch to run): from the checkpoint of an earlier attempt, if any."""
    checkpoint.remove_temporaries(out_dir, (CHECKPOINT, BEST_MODEL, MODEL))
    state = checkpoint.load(out_dir / CHECKPOINT, spec)
    if state is None:
        (out_dir / BEST_MODEL).unlink(missing_ok=True)  # another run's
        return History(), 1
    parts.network.model.load_state_dict(state["model"])
    parts.step.optimizer.load_state_dict(state["optimizer"])
    history = History(state["history"])
    # model_best.pt is written after the checkpoint of its epoch: a kill between the two leaves
    # the checkpoint's weights as the only copy of the best ones.
    if history.best_epoch == state["epoch"]:
        checkpoint.save_atomic(parts.network.model.state_dict(), out_dir / BEST_MODEL)
    elif not (out_dir / BEST_MODEL).exists():
        raise CheckpointError(
            f"{out_dir / BEST_MODEL}: missing, and {CHECKPOINT} needs it; delete "
            f"{out_dir / CHECKPOINT} to start the run afresh"
        )
    progress.note(f"resuming from {out_dir / CHECKPOINT} after epoch {state['epoch']}")
    return history, state["epoch"] + 1


def _train_epoch(spec, parts: RunParts, epoch: int, stop_flag, progress) -> EpochResult:
    steps = parts.data.steps_per_epoch
    with out_of_memory(spec, "training", f"batch_size {spec.train['batch_size']}"):
        return train_epoch(
            parts.graphed_step,
            parts.graphed_step.batches(epoch),
            first_step=(epoch - 1) * steps,
            total_steps=steps,
            stop_flag=stop_flag or (lambda: False),
            progress=progress,
        )


@contextmanager
def out_of_memory(spec: RunSpec, stage: str, setting: str | None = None):
    """A GPU out of memory in `stage` (training, evaluation, setup) as one line naming the
    setting to lower (`setting`, e.g. "batch_size 512") instead of a traceback."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        where = f"{stage} of experiment '{spec.id.experiment}' on {spec.id.dataset}"
        if setting is None:
            advice = "the dataset and the model do not fit on this GPU: ask for a larger one"
        else:
            advice = f"{setting}: try a smaller {setting.split()[0]}"
        raise RunFailed(f"CUDA out of memory in {where} ({advice})") from None


def _diverged(spec, epoch: int, progress) -> None:
    """The loss stopped being finite: fail the run, or note it and let the run end here."""
    if spec.train["on_diverge"] == "fail":
        raise RunFailed(
            f"run {spec.id.name} diverged in epoch "
            f"{epoch} (loss is not finite); lower lr or set train.on_diverge: stop"
        )
    progress.note(f"diverged in epoch {epoch}: loss is not finite; stopping")


def _epoch_row(epoch: int, result: EpochResult, parts: RunParts, train_time: float) -> dict:
    """The epoch's values of runlog.EPOCH_SERIES but epoch_time: training, then evaluation."""
    net, batch = parts.network.model, parts.eval_batch_size
    val = evaluate(net, parts.data, "val", batch)
    test = evaluate(net, parts.data, "test", batch)
    subset = evaluate(net, parts.data, TRAIN_SUBSET, batch)
    return {
        "epoch": epoch,
        "train_loss": result.loss,
        "train_acc": result.acc,
        "val_loss": val.loss,
        "val_acc": val.acc,
        "test_loss": test.loss,
        "test_acc": test.acc,
        "train_subset_acc": subset.acc,
        "lr": result.lr,
        "train_time": train_time,
        "images_per_s": parts.data.size("train") / train_time,
    }
