"""Where a run computes: the device, its numeric settings, and its precision (`train.precision`:
bf16 autocast, or float32 throughout)."""

from __future__ import annotations

import os
import warnings

import torch

from imgzoo import gpus
from imgzoo.errors import ConfigError


def select_device(requested: str) -> torch.device:
    """The GPU SLURM (or the user) gave us, or the CPU with a warning where none is usable."""
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        devices = torch.cuda.device_count()
        if devices > 1 and "SLURM_JOB_ID" not in os.environ:  # a local run: a GPU of its own
            index = gpus.claim(devices)
            torch.cuda.set_device(index)
            return torch.device("cuda", index)
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


def driver_id(device: torch.device) -> str:
    """The GPU as NVIDIA's driver names it (NVML, nvidia-smi): its UUID `GPU-...`, whatever
    CUDA_VISIBLE_DEVICES renumbered; else the CUDA_VISIBLE_DEVICES entry or the index."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        text = str(uuid)
        return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    visible = [d for d in visible if d]
    return visible[index] if index < len(visible) else str(index)


def configure(
    device: torch.device,
    threads: int | None = None,
    deterministic: bool = True,
    memory_fraction: float | None = None,
    precision: str = "auto",
) -> None:
    """The CPU threads, whether kernels are deterministic (`train.deterministic`), and the share
    of the GPU's memory this process may allocate (`resources.gpu_mem_fraction`; None: all).

    Deterministic (the default: the same seed gives the same numbers, a resumed run equals an
    uninterrupted one): torch's deterministic algorithms, no cuDNN autotuning (it picks kernels
    by timing), and on the GPU scaled-dot-product attention on the math kernel only: the fused
    flash and memory-efficient kernels' backward passes accumulate in a varying order, and
    torch's deterministic mode only warns about them. Otherwise cuDNN autotunes and attention
    takes the fastest kernel. TF32 convolutions are allowed either way (deterministic, and
    PyTorch's default); TF32 matmuls too, but for `precision: fp32`, which keeps PyTorch's
    default of full float32 matmuls, as a script without autocast trains."""
    # cuBLAS needs this workspace setting to be deterministic; it must be set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: some kernels (adaptive pooling's backward, say) are flagged although their
    # result does not vary; strict mode would refuse to train the ResNets on a GPU.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = autocast_dtype(precision, device) is not None
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.enable_flash_sdp(not deterministic)
        torch.backends.cuda.enable_mem_efficient_sdp(not deterministic)
        torch.backends.cuda.enable_cudnn_sdp(not deterministic)
        torch.backends.cuda.enable_math_sdp(True)
        if memory_fraction:
            # Runs packed on one GPU: past its share, this process gets an out-of-memory error
            # of its own instead of taking the memory its neighbours need.
            torch.cuda.set_per_process_memory_fraction(float(memory_fraction))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype autocast computes in for `train.precision` on `device`; None: float32.

    `auto` is bf16 on a GPU only: on CPUs without native bf16 it is about 20x slower.
    """
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, precision: str = "auto"):
    """The context a forward pass runs in: bf16 autocast, or nothing (float32)."""
    dtype = autocast_dtype(precision, device)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (so that a clock read afterwards includes it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
