"""Small helpers shared by the model families: first-layer tiles."""

import numpy as np
import torch


@torch.no_grad()
def to_tiles(weight: torch.Tensor) -> np.ndarray:
    """A weight view as a float32 numpy stack of tiles, detached and on the CPU."""
    return weight.detach().float().cpu().numpy().astype(np.float32, copy=False)


@torch.no_grad()
def conv_tiles(conv: torch.nn.Conv2d) -> tuple[np.ndarray, str]:
    """A conv layer's kernels averaged over input channels: (out_channels, k, k)."""
    return to_tiles(conv.weight.mean(dim=1)), "conv"
