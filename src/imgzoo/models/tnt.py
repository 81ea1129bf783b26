"""Transformer in Transformer (Han et al. 2021) as study 3 trained it, written with einops.

The image is cut into patch_size × patch_size patches (outer tokens) and each patch into
pixel_size × pixel_size "pixels" (inner tokens, (patch/pixel)² per patch), each pixel embedded by
one linear layer. Every layer runs an inner transformer over each patch's pixels, adds a linear
projection of the flattened pixels to their patch token, then runs the outer transformer over the
patches and a CLS token.

Why not timm's TNT: its inner tokens come from a 7×7 convolution with stride `first_stride` over
the patch, so "pixel size" is not a free parameter and study 3's ablation pairs (8/1, 16/4, 32/4,
...) cannot be expressed. Here any pixel size that divides the patch size works.

As in the implementation study 3 used (lucidrains' transformer-in-transformer), the outer tokens
start as learned vectors (one per position, plus CLS) and see the image only through the
pixel-to-patch projections; inner and outer attention use the same heads and head width unless
pixel_heads / pixel_dim_head say otherwise. Also as there: the outer start is the sum of two
learned tables, `patch_tokens` and `patch_pos_emb`, and the pixels get `pixel_pos_emb`, all
drawn N(0, 1); kept as two tables, the sum moves twice as fast under Adam as one table would.
Dropout falls on each attention's output and inside each feed-forward, never on attention
weights.
"""

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from imgzoo.models import joint_checks
from imgzoo.models._common import to_tiles


class Attention(nn.Module):
    """Pre-norm multi-head self-attention (the residual is added by the caller); dropout on
    its output."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = rearrange(
            self.to_qkv(self.norm(x)), "b n (three h d) -> three b h n d", three=3, h=self.heads
        )
        return self.to_out(rearrange(_attend(*qkv), "b h n d -> b n (h d)"))


# CUDA's fused attention kernels take at most 65,535 sequences per call; the inner attention
# runs one sequence per patch (batch x patches: 256,000 for 2 px patches of 32 px images at an
# evaluation batch of 1000), so larger batches are attended in slices of this size.
MAX_SEQUENCES = 65535


def _attend(q, k, v) -> torch.Tensor:
    if q.shape[0] <= MAX_SEQUENCES:
        return F.scaled_dot_product_attention(q, k, v)
    slices = zip(*(t.split(MAX_SEQUENCES) for t in (q, k, v)), strict=True)
    return torch.cat([F.scaled_dot_product_attention(*s) for s in slices])


def feed_forward(dim: int, dropout: float, mult: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, dim * mult),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(dim * mult, dim),
    )


class Layer(nn.Module):
    def __init__(
        self, dim, pixel_dim, num_pixels, heads, dim_head, pixel_heads, pixel_dim_head, dropout
    ):
        super().__init__()
        self.pixel_attn = Attention(pixel_dim, pixel_heads, pixel_dim_head, dropout)
        self.pixel_ff = feed_forward(pixel_dim, dropout)
        self.pixel_to_patch = nn.Sequential(
            nn.LayerNorm(pixel_dim),
            nn.Flatten(start_dim=-2),  # (..., pixels, pixel_dim) -> (..., pixels * pixel_dim)
            nn.Linear(num_pixels * pixel_dim, dim),
        )
        self.patch_attn = Attention(dim, heads, dim_head, dropout)
        self.patch_ff = feed_forward(dim, dropout)

    def forward(self, patches: torch.Tensor, pixels: torch.Tensor):
        """patches (B, 1 + N, dim) with CLS first; pixels (B * N, P, pixel_dim)."""
        pixels = pixels + self.pixel_attn(pixels)
        pixels = pixels + self.pixel_ff(pixels)
        to_patch = rearrange(self.pixel_to_patch(pixels), "(b n) d -> b n d", b=patches.shape[0])
        patches = patches + F.pad(to_patch, (0, 0, 1, 0))  # the CLS token gets nothing
        patches = patches + self.patch_attn(patches)
        patches = patches + self.patch_ff(patches)
        return patches, pixels


class TNT(nn.Module):
    def __init__(
        self,
        *,
        num_classes,
        image_size,
        in_chans,
        patch_size,
        pixel_size,
        dim,
        pixel_dim,
        depth,
        heads,
        dim_head,
        pixel_heads,
        pixel_dim_head,
        dropout,
    ):
        super().__init__()
        self.patch_size, self.pixel_size = patch_size, pixel_size
        num_patches = (image_size // patch_size) ** 2
        num_pixels = (patch_size // pixel_size) ** 2
        self.pixel_embed = nn.Linear(in_chans * pixel_size**2, pixel_dim)
        self.pixel_pos_emb = nn.Parameter(torch.randn(num_pixels, pixel_dim))
        # the outer tokens' learned start (CLS + one per patch): two tables, summed
        self.patch_tokens = nn.Parameter(torch.randn(1 + num_patches, dim))
        self.patch_pos_emb = nn.Parameter(torch.randn(1 + num_patches, dim))
        self.layers = nn.ModuleList(
            Layer(dim, pixel_dim, num_pixels, heads, dim_head, pixel_heads, pixel_dim_head, dropout)
            for _ in range(depth)
        )
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = self.patch_size, self.pixel_size
        # one row per patch, one token per pixel, features ordered (channel, row, column)
        pixels = rearrange(
            x, "b c (h i k) (w j l) -> (b h w) (i j) (c k l)", i=p // q, j=p // q, k=q, l=q
        )
        pixels = self.pixel_embed(pixels) + self.pixel_pos_emb
        patches = (self.patch_tokens + self.patch_pos_emb).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            patches, pixels = layer(patches, pixels)
        return self.head(patches[:, 0])

    def first_layer_tiles(self) -> tuple[np.ndarray, str]:
        q = self.pixel_size
        weight = self.pixel_embed.weight.reshape(self.pixel_embed.out_features, -1, q, q)
        return to_tiles(weight.mean(dim=1)), "patch_embedding"


def build(
    num_classes: int,
    image_size: int,
    in_chans: int,
    *,
    patch_size: int = 4,
    pixel_size: int = 2,
    dim: int = 192,
    pixel_dim: int = 24,
    depth: int = 6,
    heads: int = 8,
    dim_head: int = 64,
    pixel_heads: int | None = None,
    pixel_dim_head: int | None = None,
    dropout: float = 0.1,
) -> TNT:
    """A TnT. pixel_heads / pixel_dim_head (the inner attention) default to heads / dim_head,
    which is what study 3's implementation did."""
    pixel_heads = pixel_heads or heads
    pixel_dim_head = pixel_dim_head or dim_head
    joint_checks.tnt(image_size, patch_size, pixel_size)
    return TNT(
        num_classes=num_classes,
        image_size=image_size,
        in_chans=in_chans,
        patch_size=patch_size,
        pixel_size=pixel_size,
        dim=dim,
        pixel_dim=pixel_dim,
        depth=depth,
        heads=heads,
        dim_head=dim_head,
        pixel_heads=pixel_heads,
        pixel_dim_head=pixel_dim_head,
        dropout=dropout,
    )
