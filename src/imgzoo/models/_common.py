"""Small helpers shared by the model families: first-layer tiles, errors as one line."""

import os
import re
import traceback

import numpy as np
import torch

from imgzoo.errors import ConfigError

# Python's TypeError for a keyword a function does not take: a model argument it does not know.
UNEXPECTED_ARGUMENT = re.compile(r"unexpected keyword argument '(\w+)'")


@torch.no_grad()
def to_tiles(weight: torch.Tensor) -> np.ndarray:
    """A weight view as a float32 numpy stack of tiles, detached and on the CPU."""
    return weight.detach().float().cpu().numpy().astype(np.float32, copy=False)


@torch.no_grad()
def conv_tiles(conv: torch.nn.Conv2d) -> tuple[np.ndarray, str]:
    """A conv layer's kernels averaged over input channels: (out_channels, k, k)."""
    return to_tiles(conv.weight.mean(dim=1)), "conv"


def error_line(error: BaseException, file: str | None = None) -> str:
    """An exception as one line: its type and first line, and where `file` is given the line of
    that file it was raised from (the user's own network: the spot to look at)."""
    reason = (str(error).strip().splitlines() or [""])[0]
    text = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
    if file is not None:
        target = os.path.abspath(file)
        lines = [f.lineno for f in traceback.extract_tb(error.__traceback__)
                 if os.path.abspath(f.filename) == target]
        if lines:
            text += f" (line {lines[-1]})"
    return text


def check_logits(model: torch.nn.Module, who: str, *, num_classes: int, image_size: int,
                 in_chans: int, file: str | None = None) -> None:
    """ConfigError unless `model` maps a dummy batch of the dataset's shape to (2, num_classes)
    logits: a constraint the shape breaks is found here, before any data is loaded. Evaluation
    mode, no gradients and a forked random state: the model and the run's random numbers are
    as they were. `file`: the user's network file, whose line an error names."""
    shape = (2, in_chans, image_size, image_size)
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except Exception as error:  # the architecture's own constraint, or the user's code
        raise ConfigError(
            f"{who} cannot take the dataset's {image_size}x{image_size} images with {in_chans} "
            f"channel(s): {error_line(error, file)}"
        ) from error
    finally:
        model.train(was_training)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != (2, num_classes):
        raise ConfigError(
            f"{who}: a batch of shape {shape} gives logits of shape {got}, not (2, {num_classes}) "
            f"(N x num_classes)"
        )


@torch.no_grad()
def found_first_layer(model: torch.nn.Module, input_shape: tuple[int, int, int]):
    """(tiles, kind) of a model that draws no first layer of its own: the convolution timm
    records as its first (`pretrained_cfg["first_conv"]`), else its first Conv2d (kernels
    averaged over input channels: "conv", or "patch_embedding" where the stride is the kernel),
    else its first Linear (rows as images of `input_shape` where it reads the flattened image:
    "dense", else the weight matrix as one tile: "matrix"); None without either."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    first_conv = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if first_conv:
        try:
            recorded = model.get_submodule(first_conv)
        except AttributeError:
            recorded = None
        if isinstance(recorded, torch.nn.Conv2d):
            convs.insert(0, recorded)
    if convs:
        conv = convs[0]
        patches = conv.kernel_size[0] > 1 and tuple(conv.stride) == tuple(conv.kernel_size)
        return to_tiles(conv.weight.mean(dim=1)), "patch_embedding" if patches else "conv"
    linear = next((m for m in model.modules() if isinstance(m, torch.nn.Linear)), None)
    if linear is None:
        return None
    c, h, w = input_shape
    if linear.in_features == c * h * w:
        return to_tiles(linear.weight.reshape(-1, c, h, w).mean(dim=1)), "dense"
    return to_tiles(linear.weight[None]), "matrix"
