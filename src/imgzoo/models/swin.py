"""Swin Transformer trained from scratch (study 3), built from timm's SwinTransformer.

timm clamps each stage's window to the stage's feature map and turns the shift off where the map
is no larger than the window: study 3's window 8 at 32 px (stages 8, 4, 2, 1 tokens wide) is
therefore windowed attention in no stage at all, just global attention with patch merging. That
is what the study trained, so the presets keep it.
"""

import numpy as np
from timm.models.swin_transformer import SwinTransformer

from imgzoo.errors import ConfigError
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
    # each argument checked by imgzoo.models.arguments (create calls it); here what they must
    # satisfy together and with the image size
    depths, num_heads = list(depths), list(num_heads)
    family = "model family 'swin'"
    if image_size % patch_size:
        raise ConfigError(
            f"{family}: patch_size {patch_size} does not divide image_size {image_size}; "
            "choose a patch size that divides it"
        )
    if len(depths) != len(num_heads):
        raise ConfigError(
            f"{family}: depths {depths} and num_heads {num_heads} need one entry per stage"
        )
    # each stage after the first halves the token grid (patch merging)
    grid, smallest = image_size // patch_size, 2 ** (len(depths) - 1)
    if grid < smallest:
        raise ConfigError(
            f"{family}: {len(depths)} stages need a token grid of at least {smallest}, but "
            f"image_size {image_size} / patch_size {patch_size} = {grid}; use fewer stages or a "
            "smaller patch"
        )
    for stage, heads in enumerate(num_heads):
        width = embed_dim * 2**stage
        if width % heads:
            raise ConfigError(
                f"{family}: stage {stage + 1} is {width} wide, not divisible by its {heads} heads"
            )
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
