"""Swin Transformer trained from scratch (study 3), built from timm's SwinTransformer.

timm clamps each stage's window to the stage's feature map and turns the shift off where the map
is no larger than the window: study 3's window 8 at 32 px (stages 8, 4, 2, 1 tokens wide) is
therefore windowed attention in no stage at all, just global attention with patch merging. That
is what the study trained, so the presets keep it.
"""

import numpy as np
from timm.models.swin_transformer import SwinTransformer

from imgzoo.models import joint_checks
from imgzoo.models._common import to_tiles


class Swin(SwinTransformer):
    def first_layer_tiles(self) -> tuple[np.ndarray, str]:
        weight = self.patch_embed.proj.weight  # (embed_dim, C, p, p)
        return to_tiles(weight.mean(dim=1)), "patch_embedding"


def default_window(image_size: int, patch_size: int) -> int:
    """Study 3 used window 8 at 32 and 64 px and 12 at 96 px (a 24-token grid); generally 12
    where it tiles the first stage and 8 otherwise."""
    return 12 if (image_size // patch_size) % 12 == 0 else 8


def build(
    num_classes: int,
    image_size: int,
    in_chans: int,
    *,
    embed_dim: int = 64,
    depths: list[int] | tuple[int, ...] = (2, 2, 8, 2),
    num_heads: list[int] | tuple[int, ...] = (2, 4, 8, 16),
    patch_size: int = 4,
    window_size: int | None = None,
    mlp_ratio: float = 4.0,
    drop_path: float = 0.1,
) -> Swin:
    joint_checks.swin(image_size, patch_size, embed_dim, depths, num_heads)
    return Swin(
        img_size=image_size,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        embed_dim=embed_dim,
        depths=tuple(depths),
        num_heads=tuple(num_heads),
        window_size=window_size or default_window(image_size, patch_size),
        mlp_ratio=mlp_ratio,
        drop_path_rate=drop_path,
    )
