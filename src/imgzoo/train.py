"""One training run: a prepared dataset in memory, a model from the registry, an epoch loop that
logs every metric, checkpoints atomically after each epoch, and resumes to the bit.

Why a resumed run equals an uninterrupted one: every random draw of an epoch (shuffle,
augmentation, dropout) comes from generators seeded by (seed, epoch), and the checkpoint holds
the model, optimizer and metric history at the epoch boundary. So epoch k+1 after a restart sees
exactly the state and the random numbers it would have seen anyway.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import imgzoo
from imgzoo import augment, data, runlog
from imgzoo.errors import CheckpointError, ConfigError, RunFailed
from imgzoo.models import count_params, create, first_layer_tiles
from imgzoo.progress import Progress

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.h5"
MODEL = "model.pt"
# `eval_batch_size: auto`. On the CPU the activations of a 1000-image batch spill out of the
# caches: batches of 128 evaluate the mixer, resnet18 and the ViT 1.5-2x faster, the MLP about as
# fast (docs/performance.md). A GPU wants large batches.
EVAL_BATCH_AUTO = {"cuda": 1000, "cpu": 128}


class Preempted(Exception):
    """Raised between steps when the launcher asked the run to stop (SLURM's warning signal)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def select_device(requested: str) -> torch.device:
    """The GPU SLURM (or the user) gave us, or the CPU with a warning where none is usable."""
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise ConfigError("train.device is 'cuda' but torch sees no CUDA device")
    if os.environ.get("CUDA_VISIBLE_DEVICES", "") not in ("", "-1"):
        warnings.warn(
            f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']} but torch has no usable "
            "CUDA device: training on the CPU",
            stacklevel=2,
        )
    return torch.device("cpu")


def epoch_seed(seed: int, epoch: int) -> int:
    # A fixed mix of (seed, epoch) so that every epoch's random stream stands on its own.
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


class Trainer:
    def __init__(
        self,
        spec: dict,
        data_path: str | os.PathLike,
        out_dir: str | os.PathLike,
        *,
        threads: int | None = None,
        stop_flag=None,
    ):
        self.spec = spec
        self.cfg = spec["train"]
        self.out_dir = Path(out_dir)
        self.data_path = Path(data_path)
        self.stop_flag = stop_flag or (lambda: False)
        if threads:
            torch.set_num_threads(threads)
        self.device = select_device(self.cfg["device"])
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = False
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    # ---- setup --------------------------------------------------------------------------------

    def _setup(self) -> None:
        spec, cfg = self.spec, self.cfg
        torch.manual_seed(spec["seed"])
        self.ds = data.load(self.data_path)
        ds = self.ds
        to_dev = lambda a: torch.from_numpy(a).to(self.device).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        self.x = {"train": to_dev(ds.train_x), "val": to_dev(ds.val_x), "test": to_dev(ds.test_x)}
        self.y = {
            k: torch.from_numpy(v).to(self.device)
            for k, v in (("train", ds.train_y), ("val", ds.val_y), ("test", ds.test_y))
        }
        n_sub = min(cfg["train_subset_size"], len(ds.train_y))
        # The train split is already shuffled (stratified) at preparation: its first images are a
        # fixed, class-balanced subset, the same for every run of the dataset.
        self.x["train_subset"], self.y["train_subset"] = (
            self.x["train"][:n_sub],
            self.y["train"][:n_sub],
        )
        self.mean = torch.tensor(ds.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(ds.std, device=self.device).view(1, -1, 1, 1)
        self.augment = augment.build(cfg["augment"], ds.image_size)

        self.model = create(
            spec["model"],
            num_classes=ds.num_classes,
            image_size=ds.image_size,
            in_chans=ds.channels,
            **spec["model_args"],
        ).to(self.device)
        self.raw_input = getattr(self.model, "input_normalization", "dataset") == "raw"
        self.num_params = count_params(self.model)
        # Channels-last lets oneDNN (CPU) and cuDNN (GPU) skip layout conversions in every
        # convolution: resnet18 evaluates 1.3x faster on one CPU core, trains up to 1.2x faster.
        self.channels_last = cfg["channels_last"] and _is_convnet(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if cfg["compile"] else self.model
        self.optimizer = _optimizer(self.model, cfg)
        n_train = len(ds.train_y)
        self.steps_per_epoch = _batches(n_train, cfg["batch_size"])
        self.total_steps = self.steps_per_epoch * cfg["epochs"]
        self.eval_batch_size = cfg["eval_batch_size"]
        if self.eval_batch_size == "auto":
            self.eval_batch_size = EVAL_BATCH_AUTO["cuda" if self.cuda else "cpu"]

    # ---- one batch ----------------------------------------------------------------------------

    def _inputs(self, x_uint8: torch.Tensor, generator=None) -> torch.Tensor:
        x = x_uint8.float().div_(255)
        if generator is not None:
            x = self.augment(x, generator)
        if not self.raw_input:
            x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self):
        # bf16 only on the GPU: on CPUs without native bf16 it is about 20x slower.
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda)

    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        warmup = round(cfg["warmup_epochs"] * self.steps_per_epoch)
        if step < warmup:
            return cfg["lr"] * (step + 1) / warmup
        if cfg["schedule"] == "constant":
            return cfg["lr"]
        progress = (step - warmup) / max(1, self.total_steps - warmup)
        if cfg["schedule"] == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * progress))
        else:  # linear decay to min_lr
            factor = 1 - progress
        return cfg["min_lr"] + (cfg["lr"] - cfg["min_lr"]) * factor

    def _loss(self, out, y):
        smoothing = self.cfg["label_smoothing"]
        if isinstance(out, tuple):  # auxiliary heads: their losses are summed, unweighted
            logits, aux = out
            loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
            for a in aux:
                loss = loss + F.cross_entropy(a, y, label_smoothing=smoothing)
            return logits, loss
        return out, F.cross_entropy(out, y, label_smoothing=smoothing)

    # ---- epochs -------------------------------------------------------------------------------

    def _train_epoch(
        self, epoch: int, progress: Progress
    ) -> tuple[float, float, np.ndarray, np.ndarray]:
        cfg = self.cfg
        self.model.train()
        seed = epoch_seed(self.spec["seed"], epoch)
        torch.manual_seed(seed)  # dropout, MixStyle and other in-model randomness
        gen = torch.Generator(device=self.device).manual_seed(seed)
        n = len(self.y["train"])
        order = torch.randperm(n, device=self.device, generator=gen)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        step_losses, step_lrs = [], []
        step0 = (epoch - 1) * self.steps_per_epoch
        bs = cfg["batch_size"]
        for i in range(self.steps_per_epoch):
            if self.stop_flag():
                raise Preempted
            idx = order[i * bs : (i + 1) * bs] if i < self.steps_per_epoch - 1 else order[i * bs :]
            lr = self.lr_at(step0 + i)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            # index_select, not x[idx]: the same rows, ~20x faster on the CPU (advanced
            # indexing takes a general path: 0.4 ms for a batch of 128 CIFAR images).
            x = self._inputs(self.x["train"].index_select(0, idx), gen)
            y = self.y["train"].index_select(0, idx)
            with self._autocast():
                logits, loss = self._loss(self.forward(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["grad_clip"])
            self.optimizer.step()
            loss_d = loss.detach().float()
            loss_sum += loss_d * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            step_losses.append(loss_d)
            step_lrs.append(lr)
            if progress.wants_update() or i % 50 == 49:
                value = loss_d.item()
                if not math.isfinite(value):
                    break  # diverged: the caller sees it in the epoch loss
                progress.step(i + 1, self.steps_per_epoch, value)
        steps = torch.stack(step_losses).cpu().numpy()
        return (loss_sum / n).item(), correct.item() / n, steps, np.asarray(step_lrs)

    @torch.inference_mode()
    def evaluate(self, split: str, want_predictions: bool = False):
        self.model.eval()
        x_all, y_all = self.x[split], self.y[split]
        bs = self.eval_batch_size
        # Sums stay on the device until the end: no GPU sync per batch. float64, as the Python
        # float they replace, so the sums are the same to the bit.
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        preds = []
        for start in range(0, len(y_all), bs):
            x = self._inputs(x_all[start : start + bs])
            y = y_all[start : start + bs]
            with self._autocast():
                logits = self.forward(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            pred = logits.argmax(1)
            correct += (pred == y).sum()
            if want_predictions:
                preds.append(pred)
        n = len(y_all)
        loss, acc = loss_sum.item() / n, correct.item() / n
        if want_predictions:
            return loss, acc, torch.cat(preds).cpu().numpy()
        return loss, acc

    # ---- checkpoints --------------------------------------------------------------------------

    def _spec_key(self) -> str:
        return json.dumps(self.spec, sort_keys=True)

    def _save_checkpoint(self, state: dict) -> None:
        path = self.out_dir / CHECKPOINT
        tmp = path.with_name(f".{CHECKPOINT}.{os.getpid()}.tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _load_checkpoint(self) -> dict | None:
        path = self.out_dir / CHECKPOINT
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"{path}: not a readable imgzoo checkpoint ({e.__class__.__name__}); "
                "delete it to start the run afresh"
            ) from None
        if not isinstance(state, dict) or state.get("format") != "imgzoo.checkpoint":
            raise CheckpointError(f"{path}: not an imgzoo checkpoint; delete it to start afresh")
        if state["spec"] != self._spec_key():
            warnings.warn(f"{path} was written with other settings: starting afresh", stacklevel=2)
            return None
        return state

    # ---- the run ------------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> runlog.RunLog:
        self._setup()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob(f".{CHECKPOINT}.*.tmp"):  # a save cut short by a kill
            stale.unlink()
        progress = progress or Progress(self.cfg["epochs"])
        history = {k: [] for k in runlog.EPOCH_SERIES}
        steps = {"loss": [], "lr": []}
        start_time, slurm_ids, first_epoch = _now(), [], 1
        state = self._load_checkpoint()
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            history, steps = state["history"], state["steps"]
            start_time, slurm_ids = state["start_time"], state["slurm_job_ids"]
            first_epoch = state["epoch"] + 1
            progress.note(f"resuming from {self.out_dir / CHECKPOINT} after epoch {state['epoch']}")
        job_id = os.environ.get("SLURM_JOB_ID")
        if job_id and job_id not in slurm_ids:
            slurm_ids.append(job_id)

        status, diverged_epoch = "completed", -1
        for epoch in range(first_epoch, self.cfg["epochs"] + 1):
            progress.start_epoch(epoch)
            t0 = time.perf_counter()
            try:
                train_loss, train_acc, step_losses, step_lrs = self._train_epoch(epoch, progress)
            except torch.cuda.OutOfMemoryError:
                raise RunFailed(
                    f"CUDA out of memory in experiment '{self.spec['experiment']}' (batch_size "
                    f"{self.cfg['batch_size']}, image size {self.ds.image_size}): try a smaller "
                    "batch_size"
                ) from None
            if self.cuda:
                torch.cuda.synchronize()
            train_time = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                status, diverged_epoch = "diverged", epoch
                if self.cfg["on_diverge"] == "fail":
                    raise RunFailed(
                        f"run {self.spec['dataset']}/{self.spec['experiment']}/seed"
                        f"{self.spec['seed']} diverged in epoch {epoch} (loss is not finite); "
                        "lower lr or set train.on_diverge: stop"
                    )
                progress.note(f"diverged in epoch {epoch}: loss is not finite; stopping")
                break
            val_loss, val_acc = self.evaluate("val")
            test_loss, test_acc = self.evaluate("test")
            _, subset_acc = self.evaluate("train_subset")
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "train_subset_acc": subset_acc,
                "lr": self.optimizer.param_groups[0]["lr"],
                "epoch_time": time.perf_counter() - t0,
                "images_per_s": len(self.y["train"]) / train_time,
            }
            for key, value in row.items():
                history[key].append(value)
            steps["loss"].extend(step_losses.tolist())
            steps["lr"].extend(step_lrs.tolist())
            progress.end_epoch(row)
            self._save_checkpoint(
                {
                    "format": "imgzoo.checkpoint",
                    "spec": self._spec_key(),
                    "epoch": epoch,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "history": history,
                    "steps": steps,
                    "start_time": start_time,
                    "slurm_job_ids": slurm_ids,
                }
            )

        return self._finish(history, steps, status, diverged_epoch, start_time, slurm_ids)

    def _finish(self, history, steps, status, diverged_epoch, start_time, slurm_ids):
        _, _, preds = self.evaluate("test", want_predictions=True)
        k = self.ds.num_classes
        confusion = np.zeros((k, k), dtype=np.int64)
        np.add.at(confusion, (self.ds.test_y, preds), 1)
        tiles = first_layer_tiles(self.model)
        log = runlog.RunLog(
            attrs={
                "experiment": self.spec["experiment"],
                "model": self.spec["model_name"],
                "family": self.spec["model"],
                "dataset": self.spec["dataset"],
                "seed": self.spec["seed"],
                "config": json.dumps(self.spec),
                "num_params": self.num_params,
                "status": status,
                "diverged_epoch": diverged_epoch,
                "epochs_planned": self.cfg["epochs"],
                "epochs_completed": len(history["epoch"]),
                "start_time": start_time,
                "end_time": _now(),
                "host": socket.gethostname(),
                "slurm_job_ids": ",".join(slurm_ids),
                "device": str(self.device),
                "device_name": torch.cuda.get_device_name() if self.cuda else platform.processor(),
                "imgzoo_version": imgzoo.__version__,
                "torch_version": torch.__version__,
                "python_version": sys.version.split()[0],
            },
            epochs={k: np.asarray(v) for k, v in history.items()},
            confusion=confusion,
            class_names=list(self.ds.class_names),
            first_layer=tiles[0] if tiles else None,
            first_layer_kind=tiles[1] if tiles else "",
            steps={k: np.asarray(v) for k, v in steps.items()},
        )
        torch.save(self.model.state_dict(), self.out_dir / MODEL)
        runlog.write(self.out_dir / METRICS, log)
        (self.out_dir / CHECKPOINT).unlink(missing_ok=True)
        return log


def _batches(n: int, batch_size: int) -> int:
    # A last batch of one image would break BatchNorm: fold it into the one before.
    full, rest = divmod(n, batch_size)
    return max(1, full + (1 if rest > 1 else 0))


def _is_convnet(model: torch.nn.Module) -> bool:
    """More convolutions than a transformer's patch embedding: channels-last pays off."""
    return sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) > 1


def _optimizer(model: torch.nn.Module, cfg: dict) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), cfg["lr"], cfg["weight_decay"]
    name = cfg["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd)
    if name == "adam":  # weight_decay as L2 in the gradient, as torch.optim.Adam defines it
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg["betas"]), weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(cfg["betas"]), weight_decay=wd)


def train(
    spec: dict,
    data_path,
    out_dir,
    *,
    threads: int | None = None,
    stop_flag=None,
    progress: Progress | None = None,
) -> runlog.RunLog:
    """Run (or resume) one training run and write its metrics.h5; returns the log."""
    # cuBLAS needs this workspace setting to be deterministic; it must be set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    trainer = Trainer(spec, data_path, out_dir, threads=threads, stop_flag=stop_flag)
    return trainer.run(progress)
