"""Where a run computes: the device, its numeric settings, and bf16 autocast on the GPU."""

from __future__ import annotations

import os
import warnings

import torch

from imgzoo.errors import ConfigError


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


def configure(device: torch.device, threads: int | None = None) -> None:
    """Deterministic algorithms (a resumed run must equal an uninterrupted one), the CPU threads,
    and on the GPU: no cuDNN autotuning (it picks kernels by timing), TF32 matmuls allowed."""
    # cuBLAS needs this workspace setting to be deterministic; it must be set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device):
    # bf16 only on the GPU: on CPUs without native bf16 it is about 20x slower.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (so that a clock read afterwards includes it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
