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
from imgzoo.data.store import read_shape
from imgzoo.errors import RunFailed
from imgzoo.gpu_usage import GpuSampler
from imgzoo.models import first_layer_tiles
from imgzoo.paths import BEST_MODEL, CHECKPOINT, METRICS, MODEL
from imgzoo.progress import Progress
from imgzoo.spec import RunSpec
from imgzoo.training import best_weights, checkpoint
from imgzoo.training.device import configure, driver_id, select_device, synchronize
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


def seeded_network(spec: RunSpec, shape, device: torch.device) -> Network:
    """The run's network, its initial weights drawn from the run's seed, for a dataset of
    `shape` (a prepared dataset, or its `imgzoo.data.store.Shape`)."""
    torch.manual_seed(spec.id.seed)
    return build_network(spec.settings, shape, device)


def build_parts(spec: RunSpec, prepared, device: torch.device,
                network: Network | None = None) -> RunParts:
    """The parts a run of `spec` trains with, on the prepared dataset (the benchmark builds its
    parts here too, so that it measures what a run does); `network`: its `seeded_network`, where
    built already."""
    cfg = spec.train
    network = network or seeded_network(spec, prepared, device)
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
        drop_last=cfg["drop_last"],
        input_stats=cfg["input_stats"],
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
    configure(device, threads, deterministic=cfg["deterministic"],
              memory_fraction=gpu_mem_fraction, precision=cfg["precision"])

    prepared, parts = _setup(spec, data_path, device)
    network = parts.network

    # Where an earlier attempt stopped, or the start.
    out_dir.mkdir(parents=True, exist_ok=True)
    history, first_epoch = _resume(spec, out_dir, parts, progress)
    history.begin_attempt(os.environ.get("SLURM_JOB_ID"), began)
    sampler = _gpu_sampler(device, history)

    # What the run shows while it goes: progress.json, TensorBoard files (imgzoo.live).
    tensorboard = live.TensorBoardLog(out_dir) if live.tensorboard_enabled() else None
    try:
        status, diverged_epoch = _epochs(spec, parts, history, first_epoch, out_dir,
                                         stop_flag=stop_flag, progress=progress,
                                         shown=tensorboard)
        # The best-validation model, which the log's confusion matrix and first layer
        # describe, as its headline accuracy does.
        log = _final_log(spec, parts, prepared, history, out_dir, device,
                         status=status, diverged_epoch=diverged_epoch)
    finally:
        if sampler is not None:
            sampler.stop()
    runlog.write(out_dir / METRICS, log)
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    _show(spec, out_dir, history, network, tensorboard, status=status)
    if tensorboard is not None:
        tensorboard.close()
    return log


def _setup(spec: RunSpec, data_path, device) -> tuple[data.Prepared, RunParts]:
    """The prepared dataset and the run's parts. The model (its initial weights from the run's
    seed) comes first, for the shape the dataset's file states: one that cannot take the
    dataset's images fails before they are read. Then the dataset on the device, and the step."""
    shape, network = read_shape(data_path), None
    if shape is not None:  # else data.load names what is wrong with the file
        with out_of_memory(spec, "setup"):
            network = seeded_network(spec, shape, device)
    prepared = data.load(data_path)
    with out_of_memory(spec, "setup"):
        return prepared, build_parts(spec, prepared, device, network)


def _epochs(spec: RunSpec, parts: RunParts, history: History, first_epoch: int, out_dir: Path,
            *, stop_flag, progress, shown) -> tuple[str, int]:
    """Train the epochs from `first_epoch` on, each checkpointed and shown (progress.json,
    TensorBoard `shown`) as it ends; (status, the epoch it diverged in or -1)."""
    network, step, device = parts.network, parts.step, parts.data.device
    if first_epoch <= spec.train["epochs"]:  # (a run resumed after its last epoch trains none)
        with out_of_memory(spec, "training", f"batch_size {spec.train['batch_size']}"):
            history.add_capture_time(parts.graphed_step.prepare(progress.note))  # per attempt
    for epoch in range(first_epoch, spec.train["epochs"] + 1):
        progress.start_epoch(epoch)
        t0 = time.perf_counter()
        evaluate = StepEvaluation(spec, parts, history, epoch, out_dir)
        result = _train_epoch(spec, parts, epoch, stop_flag, progress, evaluate)
        synchronize(device)
        train_time = time.perf_counter() - t0 - evaluate.seconds
        if not math.isfinite(result.loss):
            _diverged(spec, epoch, progress)
            return "diverged", epoch
        with out_of_memory(spec, "evaluation", f"eval_batch_size {parts.eval_batch_size}"):
            row = _epoch_row(spec, epoch, result, parts, history, train_time)
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
        # after the checkpoint that names its epoch (imgzoo.training.best_weights)
        if improved:
            checkpoint.save_atomic(network.model.state_dict(), out_dir / BEST_MODEL)
        best_weights.promote_pending(out_dir, history.best_step)
        _show(spec, out_dir, history, network, shown)
    return "completed", -1


class StepEvaluation:
    """With `eval_every_steps`, what evaluates after a step of `epoch`: val, test and the train
    subset into the history's evaluations, the weights of a new best pending
    (`imgzoo.training.best_weights`); `seconds` it took, which are not training time."""

    def __init__(self, spec: RunSpec, parts: RunParts, history: History, epoch: int,
                 out_dir: Path):
        self.spec, self.parts, self.history = spec, parts, history
        self.epoch, self.out_dir = epoch, out_dir
        self.seconds = 0.0

    def __call__(self, step: int) -> None:
        parts = self.parts
        # the steps queued on the GPU are training time: they end before the clock starts
        synchronize(parts.data.device)
        t0 = time.perf_counter()
        with out_of_memory(self.spec, "evaluation", f"eval_batch_size {parts.eval_batch_size}"):
            row = {"step": step, "epoch": self.epoch, **_evaluate_splits(self.spec, parts)}
        if self.history.add_evaluation(row):
            best_weights.save_pending(self.out_dir, step, parts.network.model)
        self.seconds += time.perf_counter() - t0


def _final_log(spec: RunSpec, parts: RunParts, prepared, history: History, out_dir: Path,
               device, *, status: str, diverged_epoch: int) -> runlog.RunLog:
    """The run log: the final weights saved, then the best-validation model's test predictions
    and first layer."""
    network = parts.network
    checkpoint.save_atomic(network.model.state_dict(), out_dir / MODEL)
    best_weights.promote_pending(out_dir, history.best_step)  # the best of an epoch that diverged
    if history.best_epoch > 0:
        network.model.load_state_dict(checkpoint.load_weights(out_dir / BEST_MODEL))
    with out_of_memory(spec, "evaluation", f"eval_batch_size {parts.eval_batch_size}"):
        test = evaluate(network.model, parts.data, "test", parts.eval_batch_size,
                        predictions=True, precision=spec.train["precision"])
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


def _gpu_sampler(device, history: History) -> GpuSampler | None:
    """The run's GPU sampled while it trains (imgzoo.gpu_usage), after the earlier attempts'
    samples; None on the CPU, or where neither NVML nor nvidia-smi reaches the GPU."""
    if device.type != "cuda":
        return None
    sampler = GpuSampler(driver_id(device), earlier=history.gpu, offset_s=history.wall_time_s)
    if not sampler.available:
        return None
    history.attach_gpu_sampler(sampler)
    return sampler.start()


def _show(spec: RunSpec, out_dir, history: History, network, tensorboard,
          status="running") -> None:
    """The epoch just finished (or the end, with the run's final status) in progress.json and
    TensorBoard."""
    attrs = history.attrs(spec, num_params=network.num_params, status=status)
    live.write_progress(out_dir, spec.to_dict(), history.epochs, attrs=attrs,
                        evaluations=history.evaluations if history.step_evaluations else None)
    if tensorboard is not None and status == "running":
        tensorboard.add_epochs(history.epochs, first=history.epochs_completed - 1)


def _resume(spec, out_dir: Path, parts: RunParts, progress) -> tuple[History, int]:
    """(history, first epoch to run): from the checkpoint of an earlier attempt, if any."""
    checkpoint.remove_temporaries(
        out_dir, (CHECKPOINT, BEST_MODEL, MODEL, best_weights.PENDING_FILES)
    )
    step_evaluations = bool(spec.train["eval_every_steps"])
    state = checkpoint.load(out_dir / CHECKPOINT, spec)
    if state is None:
        (out_dir / BEST_MODEL).unlink(missing_ok=True)  # another run's
        best_weights.promote_pending(out_dir, -1)  # drops them all
        return History(step_evaluations=step_evaluations), 1
    parts.network.model.load_state_dict(state["model"])
    parts.step.optimizer.load_state_dict(state["optimizer"])
    history = History(state["history"], step_evaluations=step_evaluations)
    best_weights.settle(out_dir, history, state["epoch"], parts.network.model)
    progress.note(f"resuming from {out_dir / CHECKPOINT} after epoch {state['epoch']}")
    return history, state["epoch"] + 1


def _train_epoch(spec, parts: RunParts, epoch: int, stop_flag, progress,
                 evaluate=None) -> EpochResult:
    steps = parts.data.steps_per_epoch
    with out_of_memory(spec, "training", f"batch_size {spec.train['batch_size']}"):
        return train_epoch(
            parts.graphed_step,
            parts.graphed_step.batches(epoch),
            first_step=(epoch - 1) * steps,
            total_steps=steps,
            stop_flag=stop_flag or (lambda: False),
            progress=progress,
            evaluate_every=spec.train["eval_every_steps"],
            evaluate=evaluate,
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


def _evaluate_splits(spec: RunSpec, parts: RunParts) -> dict:
    """The model as it stands on val, test and the train subset: val_loss, val_acc, test_loss,
    test_acc, train_subset_acc."""
    net, batch, precision = parts.network.model, parts.eval_batch_size, spec.train["precision"]
    val, test, subset = (
        evaluate(net, parts.data, split, batch, precision=precision)
        for split in ("val", "test", TRAIN_SUBSET)
    )
    return {"val_loss": val.loss, "val_acc": val.acc, "test_loss": test.loss,
            "test_acc": test.acc, "train_subset_acc": subset.acc}


def _epoch_row(spec: RunSpec, epoch: int, result: EpochResult, parts: RunParts,
               history: History, train_time: float) -> dict:
    """The epoch's values of runlog.EPOCH_SERIES but epoch_time: training, then evaluation (the
    evaluation after the epoch's last step where eval_every_steps made one)."""
    at_end = history.evaluation_at(epoch * parts.data.steps_per_epoch)
    if at_end is None:
        evaluated = _evaluate_splits(spec, parts)
    else:  # the same values, made after the last step
        evaluated = {k: v for k, v in at_end.items() if k not in ("step", "epoch")}
    return {
        "epoch": epoch,
        "train_loss": result.loss,
        "train_acc": result.acc,
        **evaluated,
        "lr": result.lr,
        "train_time": train_time,
        "images_per_s": parts.data.images_per_epoch / train_time,
    }
