"""Small helpers shared by the model families: argument checks and first-layer tiles."""

import numpy as np
import torch

from imgzoo.errors import ConfigError


def check_choice(family: str, key: str, value, choices) -> None:
    """ConfigError unless `value` is one of `choices`."""
    if value not in choices:
        options = ", ".join(str(c) for c in choices)
        raise ConfigError(f"model family '{family}': {key}={value!r} is not one of {options}")


def check_positive(family: str, key: str, value, *, integer: bool = False) -> None:
    """ConfigError unless `value` is a positive number (a positive int if `integer`)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"model family '{family}': {key}={value!r} must be {what}")


def check_int_list(family: str, key: str, value) -> list[int]:
    """`value` as a list of positive ints; ConfigError if it is not one."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"model family '{family}': {key}={value!r} must be a list of integers")
    for item in value:
        check_positive(family, key, item, integer=True)
    return list(value)


def check_fraction(family: str, key: str, value) -> None:
    """ConfigError unless 0 <= value < 1 (dropout probabilities)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"model family '{family}': {key}={value!r} must be in [0, 1)")


@torch.no_grad()
def to_tiles(weight: torch.Tensor) -> np.ndarray:
    """A weight view as a float32 numpy stack of tiles, detached and on the CPU."""
    return weight.detach().float().cpu().numpy().astype(np.float32, copy=False)


@torch.no_grad()
def conv_tiles(conv: torch.nn.Conv2d) -> tuple[np.ndarray, str]:
    """A conv layer's kernels averaged over input channels: (out_channels, k, k)."""
    return to_tiles(conv.weight.mean(dim=1)), "conv"
