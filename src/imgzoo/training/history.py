"""The record of a run so far (every epoch's metrics, every step's loss and learning rate, the
best-validation epoch, when and where it ran) and the run log built from it at the end."""

from __future__ import annotations

import platform
import socket
import sys
import time

import numpy as np
import torch

import imgzoo
from imgzoo import runlog
from imgzoo.spec import RunSpec


class History:
    """Plain Python values only, so that it travels in a checkpoint loaded with weights_only.

    `step_evaluations` (`train.eval_every_steps` set): the best-validation model is chosen among
    the evaluations every N steps (`add_evaluation`), not at the ends of epochs.
    """

    def __init__(self, state: dict | None = None, *, step_evaluations: bool = False):
        state = state or {}
        self.step_evaluations = step_evaluations
        self.epochs: dict[str, list] = state.get("epochs") or {k: [] for k in runlog.EPOCH_SERIES}
        self.evaluations: dict[str, list] = state.get("evaluations") or {
            k: [] for k in runlog.EVALUATION_SERIES
        }
        self.steps: dict[str, list] = state.get("steps") or {"loss": [], "lr": []}
        self.started: str = state.get("started") or runlog.now()  # of the first attempt
        self.slurm_job_ids: list[str] = state.get("slurm_job_ids", [])
        # The epoch (and with step evaluations the step) of the best validation accuracy so far
        # (ties: the earliest, as the tables select), whose weights are model_best.pt; -1 before
        # any epoch (evaluation) has completed.
        self.best_epoch: int = state.get("best_epoch", -1)
        self.best_step: int = state.get("best_step", -1)
        self.best_val_acc: float = state.get("best_val_acc", -np.inf)
        # Seconds the earlier attempts ran, and when this one began (time.monotonic).
        self._earlier_wall_time_s: float = state.get("wall_time_s", 0.0)
        # Seconds spent capturing the training step as a CUDA graph, every attempt together.
        self.capture_time_s: float = state.get("capture_time_s", 0.0)
        self._attempt_began: float = time.monotonic()
        # The GPU's samples (runlog.GPU_SERIES and GPU_ATTRS) of the earlier attempts; this
        # attempt's come from its sampler, once attached.
        self.gpu: dict = state.get("gpu") or {}
        self._gpu_sampler = None

    def state(self) -> dict:
        return {
            "epochs": self.epochs,
            "evaluations": self.evaluations,
            "steps": self.steps,
            "started": self.started,
            "slurm_job_ids": self.slurm_job_ids,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "best_val_acc": self.best_val_acc,
            "wall_time_s": self.wall_time_s,
            "gpu": self.gpu_samples(),
            "capture_time_s": self.capture_time_s,
        }

    def attach_gpu_sampler(self, sampler) -> None:
        """This attempt's GPU samples come from `sampler` (imgzoo.gpu_usage.GpuSampler, started
        with the earlier attempts' samples)."""
        self._gpu_sampler = sampler

    def gpu_samples(self) -> dict:
        """Every attempt's GPU samples so far ({} where none were taken)."""
        return self._gpu_sampler.samples() if self._gpu_sampler is not None else self.gpu

    def begin_attempt(self, slurm_job_id: str | None, began: float) -> None:
        """An attempt at the run began at `began` (time.monotonic), in a SLURM job (a requeued
        job keeps its id) or not."""
        self._attempt_began = began
        if slurm_job_id and slurm_job_id not in self.slurm_job_ids:
            self.slurm_job_ids.append(slurm_job_id)

    def add_capture_time(self, seconds: float) -> None:
        """An attempt spent `seconds` preparing its step (`GraphedStep.prepare`)."""
        self.capture_time_s += seconds

    @property
    def wall_time_s(self) -> float:
        """Seconds the run has run so far, every attempt together (queueing not included)."""
        return self._earlier_wall_time_s + (time.monotonic() - self._attempt_began)

    def add_epoch(self, row: dict, step_losses, step_lrs) -> bool:
        """Record one epoch (`row` holds every name of runlog.EPOCH_SERIES); True when its
        validation accuracy is the best so far (never with step evaluations: they choose)."""
        for key in runlog.EPOCH_SERIES:
            self.epochs[key].append(row[key])
        self.steps["loss"].extend(np.asarray(step_losses).tolist())
        self.steps["lr"].extend(np.asarray(step_lrs).tolist())
        if not self.step_evaluations and row["val_acc"] > self.best_val_acc:
            self.best_epoch, self.best_val_acc = row["epoch"], row["val_acc"]
            return True
        return False

    def add_evaluation(self, row: dict) -> bool:
        """Record an evaluation after a step (`row` holds every name of
        runlog.EVALUATION_SERIES); True when its validation accuracy is the best so far."""
        for key in runlog.EVALUATION_SERIES:
            self.evaluations[key].append(row[key])
        if row["val_acc"] > self.best_val_acc:
            self.best_epoch, self.best_val_acc = row["epoch"], row["val_acc"]
            self.best_step = row["step"]
            return True
        return False

    def evaluation_at(self, step: int) -> dict | None:
        """The evaluation made after step `step`, if any."""
        steps = self.evaluations["step"]
        if not steps or steps[-1] != step:
            return None
        return {key: values[-1] for key, values in self.evaluations.items()}

    @property
    def epochs_completed(self) -> int:
        return len(self.epochs["epoch"])

    def attrs(self, spec: RunSpec, *, num_params: int, status: str, ended: str = "",
              diverged_epoch: int = -1) -> dict:
        """The run log's attributes for the run so far (imgzoo.runlog.run_attrs)."""
        return runlog.run_attrs(
            spec.to_dict(),
            num_params=num_params,
            status=status,
            epochs_completed=self.epochs_completed,
            best_epoch=self.best_epoch,
            best_step=self.best_step,
            started=self.started,
            ended=ended,
            diverged_epoch=diverged_epoch,
            wall_time_s=self.wall_time_s,
            capture_time_s=self.capture_time_s,
            slurm_job_ids=self.slurm_job_ids,
        )


def run_log(
    spec: RunSpec,
    history: History,
    *,
    status: str,
    diverged_epoch: int,
    num_params: int,
    device: torch.device,
    confusion: np.ndarray,
    class_names: list[str],
    first_layer: tuple[np.ndarray, str] | None,
) -> runlog.RunLog:
    """The run log of a finished run: `confusion` and `first_layer` are the best model's."""
    attrs = history.attrs(spec, num_params=num_params, status=status, ended=runlog.now(),
                          diverged_epoch=diverged_epoch)
    return runlog.RunLog(
        attrs={**attrs, **provenance(device)},
        epochs={k: np.asarray(v) for k, v in history.epochs.items()},
        evaluations=(
            {k: np.asarray(v) for k, v in history.evaluations.items()}
            if history.step_evaluations else {}
        ),
        confusion=confusion,
        class_names=list(class_names),
        first_layer=first_layer[0] if first_layer else None,
        first_layer_kind=first_layer[1] if first_layer else "",
        steps={k: np.asarray(v) for k, v in history.steps.items()},
        gpu=history.gpu_samples(),
    )


def provenance(device: torch.device) -> dict:
    """Where the run ran and which code ran it."""
    cuda = device.type == "cuda"
    return {
        "host": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor(),
        "imgzoo_version": imgzoo.version(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
    }
