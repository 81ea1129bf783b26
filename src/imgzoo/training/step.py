"""One training step (forward, loss, backward, clipping, optimizer at the schedule's learning
rate) and an epoch of them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from imgzoo.training.device import autocast
from imgzoo.training.network import Network


class Preempted(Exception):
    """Raised between steps when the launcher asked the run to stop (SLURM's warning signal)."""


def build_optimizer(
    model: torch.nn.Module, cfg: dict, *, fused: bool = False
) -> torch.optim.Optimizer:
    """The run's optimizer; `fused` (on a GPU): one kernel for all parameters, its step counters
    on the device, so a step launches a few kernels and never reads a value back."""
    params, lr, wd = model.parameters(), cfg["lr"], cfg["weight_decay"]
    name = cfg["optimizer"]
    fused = fused or None  # None: torch's default, the multi-tensor (foreach) kernels
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, fused=fused)
    if name == "momentum":
        return torch.optim.SGD(
            params, lr=lr, momentum=cfg["momentum"], weight_decay=wd, fused=fused
        )
    betas = tuple(cfg["betas"])
    if name == "adam":  # weight_decay as L2 in the gradient, as torch.optim.Adam defines it
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd, fused=fused)
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd, fused=fused)


class LrSchedule:
    """The learning rate of every step: linear warm-up, then constant, cosine or linear decay
    to `min_lr` after the run's last step.

    The warm-up's W steps start at `warmup_start_lr` and rise linearly to `lr` at step W
    (DeepSpeed's WarmupLR); without a start, step k is at lr x (k + 1) / W. With
    `schedule_step: epoch` the rate changes once per epoch: epoch e (from 0) trains at the
    per-step schedule's value at the first step of epoch `position(e)`, which lags e by
    `schedule_lag_epochs` (see `epoch_position`).
    """

    def __init__(self, cfg: dict, steps_per_epoch: int):
        self.cfg = cfg
        self.steps_per_epoch = steps_per_epoch
        self.warmup = round(cfg["warmup_epochs"] * steps_per_epoch)
        self.total = steps_per_epoch * cfg["epochs"]

    def __call__(self, step: int) -> float:
        if self.cfg["schedule_step"] == "epoch":
            epoch = step // self.steps_per_epoch
            step = epoch_position(epoch, self.cfg["schedule_lag_epochs"]) * self.steps_per_epoch
        return self.per_step(step)

    def per_step(self, step: int) -> float:
        cfg = self.cfg
        if step < self.warmup:
            start = cfg["warmup_start_lr"]
            if start is None:
                return cfg["lr"] * (step + 1) / self.warmup
            return start + (cfg["lr"] - start) * step / self.warmup
        if cfg["schedule"] == "constant":
            return cfg["lr"]
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        if cfg["schedule"] == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * progress))
        else:  # linear decay to min_lr
            factor = 1 - progress
        return cfg["min_lr"] + (cfg["lr"] - cfg["min_lr"]) * factor


def epoch_position(epoch: int, lag: int) -> int:
    """The schedule position (in epochs) at which epoch `epoch` (from 0) trains when the
    scheduler is stepped once per epoch, `lag` epochs late.

    Lag 0 is `scheduler.step()` after every epoch. Study 3 called `scheduler.step(epoch - 1)`
    after epoch `epoch`, so the next epoch trained at position epoch - 1: a lag of 2. The first
    epoch trains where the scheduler starts, at position 0; torch's closed form of the cosine at
    the position -1 that the second epoch then gets equals the one at +1 (the cosine is even),
    so a negative position counts as its mirror.
    """
    return 0 if epoch == 0 else abs(epoch - lag)


def loss_of(out, y: torch.Tensor, label_smoothing: float = 0.0):
    """(logits, loss) of a model's output; auxiliary heads' losses are summed, unweighted."""
    if isinstance(out, tuple):
        logits, aux = out
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        for a in aux:
            loss = loss + F.cross_entropy(a, y, label_smoothing=label_smoothing)
        return logits, loss
    return out, F.cross_entropy(out, y, label_smoothing=label_smoothing)


class TrainStep:
    """One optimisation step of a network: `step(x, y, index) -> (logits, loss)`, detached.

    `index` counts the run's steps from 0 and picks the learning rate.
    """

    def __init__(self, network: Network, cfg: dict, *, steps_per_epoch: int, device: torch.device):
        self.network = network
        self.device = device
        self.optimizer = build_optimizer(network.model, cfg, fused=device.type == "cuda")
        self.schedule = LrSchedule(cfg, steps_per_epoch)
        self.precision = cfg["precision"]
        self.label_smoothing = cfg["label_smoothing"]
        self.grad_clip = cfg["grad_clip"]

    @property
    def lr(self) -> float:
        """The learning rate of the last step."""
        return self.optimizer.param_groups[0]["lr"]

    def __call__(self, x: torch.Tensor, y: torch.Tensor, index: int):
        self.set_lr(self.schedule(index))
        return self.update(x, y)

    def set_lr(self, lr) -> None:
        """The learning rate of the next update: a float, or a one-element device tensor that a
        CUDA graph of `update` reads (`imgzoo.training.graphed_step`)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def update(self, x: torch.Tensor, y: torch.Tensor):
        """Forward, loss, backward, clipping and the optimizer at the learning rate set."""
        with autocast(self.device, self.precision):
            logits, loss = loss_of(self.network.net(x), y, self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.network.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return logits.detach(), loss.detach().float()


@dataclass
class EpochResult:
    loss: float  # mean over the epoch's images (of augmented batches, as trained)
    acc: float
    step_losses: np.ndarray  # one per step
    step_lrs: np.ndarray
    lr: float  # at the last step


def train_epoch(
    step: TrainStep,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    first_step: int,
    total_steps: int,
    stop_flag: Callable[[], bool] = lambda: False,
    progress=None,
    evaluate_every: int | None = None,
    evaluate: Callable[[int], None] | None = None,
) -> EpochResult:
    """Train on every batch of `batches` with `step` (a TrainStep, or the GraphedStep that
    replays one: anything with `network`, `device`, `lr` and a call on the inputs of each item
    of `batches` that gives logits and loss), whose steps are numbered from `first_step`; stops
    early (a non-finite loss in the result) when the loss stops being finite. Raises Preempted,
    between two steps, when `stop_flag()` says so. `total_steps`: the epoch's, for `progress`.
    `evaluate(n)` is called after the run's n-th step whenever n is a multiple of
    `evaluate_every` (`train.eval_every_steps`)."""
    step.network.net.train()
    loss_sum = torch.zeros((), device=step.device)
    correct = torch.zeros((), device=step.device, dtype=torch.long)
    n = 0
    step_losses, step_lrs = [], []
    for i, (x, y) in enumerate(batches):
        if stop_flag():
            raise Preempted
        logits, loss = step(x, y, first_step + i)
        # Sums stay on the device: reading a value back would wait for the GPU every step.
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
        step_losses.append(loss)
        step_lrs.append(step.lr)
        done = first_step + i + 1  # the run's steps so far
        if evaluate_every and done % evaluate_every == 0:
            evaluate(done)
            step.network.net.train()  # evaluation left the model in eval mode
        if (progress is not None and progress.wants_update()) or i % 50 == 49:
            value = loss.item()
            if not math.isfinite(value):
                break  # diverged: the caller sees it in the epoch loss
            if progress is not None:
                progress.step(i + 1, total_steps, value)
    losses = torch.stack(step_losses).cpu().numpy()
    return EpochResult(
        loss=(loss_sum / n).item(),
        acc=correct.item() / n,
        step_losses=losses,
        step_lrs=np.asarray(step_lrs),
        lr=step_lrs[-1],
    )
