"""The ViT's fixed 2-D position codes: split sin-cos halves, and study 2's summed row + column."""

import math

import pytest
import torch

import imgzoo.models as models
from imgzoo.models import catalog
from imgzoo.models.vit import sincos_2d

SMALL = {"patch_size": 8, "dim": 16, "depth": 1, "heads": 2, "head_hidden": 8}


def summed_reference(grid: int, dim: int) -> torch.Tensor:
    """Study 2's code written its way: a (dim, H, W) map of row code + column code, each the
    Transformer sinusoid over the full width, then flattened row by row."""
    half = dim // 2
    omega = torch.exp(-math.log(1e4) * torch.arange(half) / half)
    pos = torch.arange(grid, dtype=torch.float32)[None, :] * omega[:, None]  # (half, grid)
    code = torch.cat([pos.sin(), pos.cos()])  # (dim, grid)
    summed = code[:, :, None] + code[:, None, :]  # (dim, rows, cols)
    return summed.flatten(1).T  # (rows * cols, dim), row-major


@pytest.mark.parametrize(("grid", "dim"), [(4, 256), (3, 16), (12, 8)])
def test_summed_code_is_row_code_plus_column_code(grid, dim):
    torch.testing.assert_close(sincos_2d(grid, grid, dim, split=False), summed_reference(grid, dim))


def test_summed_code_is_symmetric_and_the_split_code_is_not():
    grid, dim = 4, 16
    summed = sincos_2d(grid, grid, dim, split=False).view(grid, grid, dim)
    split = sincos_2d(grid, grid, dim, split=True).view(grid, grid, dim)
    # row + column cannot tell (r, c) from (c, r); the split halves can
    torch.testing.assert_close(summed, summed.transpose(0, 1))
    off_diagonal = ~torch.eye(grid, dtype=torch.bool)
    assert ((split - split.transpose(0, 1)).abs().sum(-1)[off_diagonal] > 1e-3).all()
    # both give every patch on or above the diagonal its own code
    flat = summed.view(-1, dim)
    upper = [r * grid + c for r in range(grid) for c in range(r, grid)]
    distances = torch.cdist(flat[upper], flat[upper]) + torch.eye(len(upper))
    assert distances.min() > 1e-3


@pytest.mark.parametrize("size", [32, 64])
def test_vit_with_summed_codes_trains_and_keeps_them_fixed(size):
    torch.manual_seed(0)
    model = models.create(
        "vit", num_classes=7, image_size=size, in_chans=3, pos="sincos2d_sum", **SMALL
    ).train()
    grid = size // SMALL["patch_size"]
    torch.testing.assert_close(model.pos_embed[0], summed_reference(grid, SMALL["dim"]))
    assert "pos_embed" not in dict(model.named_parameters())
    out = model(torch.rand(2, 3, size, size))
    assert out.shape == (2, 7)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_study2_presets_use_the_summed_code():
    study2 = [n for n in catalog.PRESETS if n.startswith(("vit-12x", "vitn-", "vit-aux-"))]
    assert len(study2) == 8
    for name in study2:
        assert catalog.PRESETS[name]["model_args"]["pos"] == "sincos2d_sum", name
    model = models.create("vitn-12x256-8x8-ra", num_classes=100, image_size=32, in_chans=3)
    torch.testing.assert_close(model.pos_embed[0], summed_reference(4, 256))
