"""Training-time augmentation of whole batches, as a few tensor operations on the batch's device.

The dataset lives on the device and every batch is augmented as one tensor (airbench's way): no
per-image Python, PIL or DataLoader workers. Per-image choices are masks: an operation is computed
for the whole batch and kept where the mask says so, which keeps shapes static and never waits on
the GPU. Every random number comes from the caller's generator, drawn in a fixed order that does
not depend on the data, so the same generator state gives the same batch.

`build(preset, image_size)` returns `aug(x, generator) -> x'` for x float (B, C, H, W) in [0, 1].
The presets are made of the batch operations in `imgzoo.augment.ops`. Normalisation is not
augmentation's job.
"""

import functools

import torch

from imgzoo import schema
from imgzoo.augment import ops
from imgzoo.errors import unknown_name

# What each preset does, in one line (the schema and the docs point here).
DESCRIPTIONS = {
    "none": "no augmentation",
    "flip": "horizontal flip (p=0.5)",
    "crop": "random crop, zero padding crop_padding px (default image_size // 8)",
    "standard": "random crop, zero padding crop_padding px (default image_size // 8) + "
    "horizontal flip (p=0.5)",
    "standard+rotate": "standard + rotation uniform in [-15, 15] degrees (nearest, zero fill)",
    "resized_crop+flip": "random resized crop (area 0.8-1, aspect ratio 0.9-1.1) of every image "
    "+ horizontal flip (p=0.5)",
    "color": "horizontal flip (p=0.5) + colour jitter 0.2/0.2/0.2/0.2 on every image",
    "flip+brightness_hue": "horizontal flip (p=0.5) + colour jitter brightness 0.5, hue 0.25 on "
    "every image",
    "random": "per image 1-4 successive draws from a pool, each applied in turn (twice if drawn "
    "twice): colour jitter, h-flip, v-flip, rotation 0-180 (nearest), affine, equalise, "
    "autocontrast, sharpness x2 (the flips and the last three each with p=0.5), and from 64 px a "
    "random resized crop",
}
PRESETS = tuple(DESCRIPTIONS)

# The pool of the `random` preset, as study 3's torchvision RandomChoice lists it.
RANDOM_OPS = (
    "jitter",
    "hflip",
    "vflip",
    "rotate",
    "affine",
    "equalize",
    "autocontrast",
    "sharpness",
)
# From 64 px (study 3's STL-10 and Tiny ImageNet) the pool has a ninth member, a random resized
# crop; at 32 px (its CIFAR-10) the pool has none.
RANDOM_OPS_WITH_CROP = (*RANDOM_OPS[:4], "resized_crop", *RANDOM_OPS[4:])
RESIZED_CROP_FROM = 64
# The members that torchvision applies with probability 0.5 even once drawn (their default p).
COIN_OPS = ("hflip", "vflip", "equalize", "autocontrast", "sharpness")


def random_pool(image_size: int) -> tuple[str, ...]:
    """The operations the `random` preset draws from at this image size."""
    return RANDOM_OPS_WITH_CROP if image_size >= RESIZED_CROP_FROM else RANDOM_OPS


def build(preset: str, image_size: int, *, crop_padding: int | str = "auto"):
    """The augmentation `aug(x, generator) -> x'` of a preset for square images of `image_size`.

    crop_padding: the zero padding of the random crop (crop, standard, standard+rotate), in
    pixels, or "auto" to scale it with the image (`imgzoo.schema.crop_padding_px`).
    """
    if preset not in DESCRIPTIONS:
        raise unknown_name("augmentation", preset, PRESETS)
    pad = schema.crop_padding_px(crop_padding, image_size)
    return {
        "none": _identity,
        "flip": functools.partial(ops.crop_flip, pad=0, flip=True),
        "crop": functools.partial(ops.crop_flip, pad=pad, flip=False),
        "standard": functools.partial(ops.crop_flip, pad=pad, flip=True),
        "standard+rotate": functools.partial(_standard_rotate, pad=pad),
        "resized_crop+flip": _resized_crop_flip,
        "color": _flip_jitter,
        "flip+brightness_hue": _flip_brightness_hue,
        "random": functools.partial(_random, pool=random_pool(image_size)),
    }[preset]


# --- presets ---------------------------------------------------------------------------------


def _identity(x, generator):
    return x.clone()  # a new tensor like every other preset's, so callers may write into it


def _standard_rotate(x, generator, *, pad):
    """Study 2's recipe: RandomCrop(pad) + flip + RandomRotation(15), nearest as torchvision's."""
    x = ops.crop_flip(x, generator, pad=pad, flip=True)
    angle = ops.uniform(generator, x, -15.0, 15.0)
    return ops.warp(x, ops.forward_map(angle), mode="nearest")


def _flip_jitter(x, generator):
    return ops.color_jitter(ops.crop_flip(x, generator, pad=0, flip=True), generator)


def _flip_brightness_hue(x, generator):
    """Study 3's Perceiver IO recipe on CIFAR-10: flip + ColorJitter(brightness=0.5, hue=0.25)."""
    x = ops.crop_flip(x, generator, pad=0, flip=True)
    return ops.color_jitter(x, generator, brightness=0.5, contrast=0.0, saturation=0.0, hue=0.25)


def _resized_crop_flip(x, generator):
    """Study 1's recipe: RandomResizedCrop(scale=(0.8, 1), ratio=(0.9, 1.1)) + flip."""
    x = ops.resized_crop(x, generator, scale=(0.8, 1.0), ratio=(0.9, 1.1))
    return ops.crop_flip(x, generator, pad=0, flip=True)


def draw_ops(batch: int, generator, device=None, pool=RANDOM_OPS) -> torch.Tensor:
    """(B, 4) long: the operation of each of an image's four draws, as an index into `pool`, or
    -1 for the draws past the image's count.

    Study 3's RandomChoice of [rt, rt·rt, rt·rt·rt, rt·rt·rt·rt], rt a RandomChoice over the
    pool: the count is uniform in 1..4 and the draws are independent, with replacement. This is
    the first thing `random` draws, so a clone of the generator tells a test what the batch got.
    """
    count = torch.randint(1, 5, (batch, 1), generator=generator, device=device)
    draws = torch.randint(0, len(pool), (batch, 4), generator=generator, device=device)
    return torch.where(torch.arange(4, device=device) < count, draws, -1)


def _random(x, generator, *, pool):
    """Study 3's random augmentation: each image's draws (draw_ops) applied one after another,
    in the order drawn, so an operation drawn twice is applied twice."""
    for op in draw_ops(x.shape[0], generator, x.device, pool).unbind(1):
        x = _apply_drawn(x, generator, op, pool)
    return x


def _apply_drawn(x, generator, op, pool):
    """Each image's operation `op` (an index into pool; -1: none) applied to it.

    Every operation is computed for the whole batch, its random parameters (and the p=0.5 coin
    of COIN_OPS) drawn for every image in the pool's order, and kept where the image drew it:
    the draws never depend on the data.
    """
    b = x.shape[0]
    out = x
    for index, name in enumerate(pool):
        chosen = op == index
        if name in COIN_OPS:
            chosen = chosen & (torch.rand(b, generator=generator, device=x.device) < 0.5)
        out = torch.where(chosen[:, None, None, None], _RANDOM_OP[name](x, generator), out)
    return out


# The `random` pool's operations by name, each `op(x, generator) -> x'` on the whole batch.
_RANDOM_OP = {
    "jitter": ops.color_jitter,
    "hflip": lambda x, generator: x.flip(-1),
    "vflip": lambda x, generator: x.flip(-2),
    "rotate": ops.rotate_0_180,
    "affine": ops.random_affine,
    "equalize": lambda x, generator: ops.equalize(x),
    "autocontrast": lambda x, generator: ops.autocontrast(x),
    "sharpness": lambda x, generator: ops.sharpen(x),
    "resized_crop": ops.resized_crop,
}
