"""What a family's model arguments must satisfy together and with the dataset's image size (each
argument alone is checked by `imgzoo.models.arguments`). Torch-free: a family's builder makes
these checks when it builds, and a study makes them when it loads, before any job, wherever the
dataset's image size is known then (`check`, with the builder's own defaults filled in).

`image_size` is None where the size is known in the job only (a NumPy archive): the checks that
need it wait for the builder.
"""

from __future__ import annotations

import inspect

from imgzoo.errors import ConfigError


def vit(image_size, patch_size, dim, heads, depth, pos, rel_attn, aux_heads) -> None:
    family = "model family 'vit'"
    _patch_divides(family, image_size, patch_size)
    if dim % heads:
        raise ConfigError(f"{family}: heads {heads} must divide dim {dim}")
    # the fixed sinusoids need whole sin/cos pairs per position axis
    if (pos == "sincos2d" and dim % 4) or ((pos == "sincos2d_sum" or rel_attn) and dim % 2):
        raise ConfigError(
            f"{family}: dim {dim} does not fit pos {pos!r}/rel_attn; use a multiple of 4"
        )
    aux_heads = list(aux_heads or [])
    if len(set(aux_heads)) != len(aux_heads) or any(k >= depth for k in aux_heads):
        raise ConfigError(
            f"{family}: aux_heads {aux_heads} must be distinct layer numbers from 1 to depth-1 "
            f"({depth - 1})"
        )


def mixer(image_size, patch_size, dim, token_mlp_ratio, channel_mlp_ratio) -> None:
    family = "model family 'mixer'"
    _patch_divides(family, image_size, patch_size)
    if int(token_mlp_ratio * dim) < 1 or int(channel_mlp_ratio * dim) < 1:
        raise ConfigError(f"{family}: the MLP ratios give an empty hidden layer at dim={dim}")


def swin(image_size, patch_size, embed_dim, depths, num_heads) -> None:
    family = "model family 'swin'"
    _patch_divides(family, image_size, patch_size)
    depths, num_heads = list(depths), list(num_heads)
    if len(depths) != len(num_heads):
        raise ConfigError(
            f"{family}: depths {depths} and num_heads {num_heads} need one entry per stage"
        )
    # each stage after the first halves the token grid (patch merging)
    smallest = 2 ** (len(depths) - 1)
    if image_size is not None and image_size // patch_size < smallest:
        raise ConfigError(
            f"{family}: {len(depths)} stages need a token grid of at least {smallest}, but "
            f"image_size {image_size} / patch_size {patch_size} = {image_size // patch_size}; "
            "use fewer stages or a smaller patch"
        )
    for stage, heads in enumerate(num_heads):
        width = embed_dim * 2**stage
        if width % heads:
            raise ConfigError(
                f"{family}: stage {stage + 1} is {width} wide, not divisible by its {heads} heads"
            )


def tnt(image_size, patch_size, pixel_size) -> None:
    family = "model family 'tnt'"
    _patch_divides(family, image_size, patch_size)
    if patch_size % pixel_size:
        raise ConfigError(
            f"{family}: pixel_size {pixel_size} does not divide patch_size {patch_size}; "
            "choose a pixel size that divides the patch size"
        )


def _patch_divides(family: str, image_size: int | None, patch_size: int) -> None:
    if image_size is not None and image_size % patch_size:
        raise ConfigError(
            f"{family}: patch_size {patch_size} does not divide image_size {image_size}; "
            "choose a patch size that divides it"
        )


CHECKS = {"vit": vit, "mixer": mixer, "swin": swin, "tnt": tnt}


def check(family: str, model_args: dict, image_size: int | None) -> None:
    """The checks of `family` (if it has any) on `model_args` over the builder's defaults."""
    from imgzoo.models.arguments import builder_defaults

    checks = CHECKS.get(family)
    if checks is None:
        return
    args = {**builder_defaults(family), **model_args, "image_size": image_size}
    checks(**{name: args[name] for name in inspect.signature(checks).parameters})
