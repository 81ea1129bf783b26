"""Training-time augmentation of whole batches, as a few tensor operations on the batch's device.

The dataset lives on the device and every batch is augmented as one tensor (airbench's way): no
per-image Python, PIL or DataLoader workers. Per-image choices are masks: an operation is computed
for the whole batch and kept where the mask says so, which keeps shapes static and never waits on
the GPU. Every random number comes from the caller's generator, drawn in a fixed order that does
not depend on the data, so the same generator state gives the same batch.

`build(preset, image_size)` returns `aug(x, generator) -> x'` for x float (B, C, H, W) in [0, 1].
Normalisation is not augmentation's job.
"""

import functools
import math

import torch
import torch.nn.functional as F

from imgzoo.errors import ConfigError, unknown_name

_DESCRIPTIONS = {
    "none": "no augmentation",
    "flip": "horizontal flip (p=0.5)",
    "crop": "random crop, zero padding crop_padding px (default image_size // 8)",
    "standard": "random crop, zero padding crop_padding px (default image_size // 8) + "
    "horizontal flip (p=0.5)",
    "standard+rotate": "standard + rotation uniform in [-15, 15] degrees (bilinear, zero fill)",
    "resized_crop+flip": "random resized crop (area 0.8-1, aspect ratio 0.9-1.1) of every image "
    "+ horizontal flip (p=0.5)",
    "color": "horizontal flip (p=0.5) + colour jitter 0.2/0.2/0.2/0.2 on every image",
    "flip+brightness_hue": "horizontal flip (p=0.5) + colour jitter brightness 0.5, hue 0.25 on "
    "every image",
    "random": "per image 1-4 draws from a pool: colour jitter, equalise, autocontrast, "
    "sharpness x2, h-flip, v-flip, rotation 0-180, affine, and from 64 px a random resized crop",
}
PRESETS = tuple(_DESCRIPTIONS)

# The pool of the `random` preset, in the order its operations are applied (the columns of
# `choose_ops`). Colour first, so that equalise and autocontrast never count the zeros that
# rotation brings in; then the four geometric ones composed into a single resampling (one blur,
# not up to four).
RANDOM_OPS = (
    "jitter",
    "equalize",
    "autocontrast",
    "sharpness",
    "hflip",
    "vflip",
    "rotate",
    "affine",
)
# From 64 px (study 3's STL-10 and Tiny ImageNet) the pool has a ninth member, a random resized
# crop, applied first to the images that drew it; at 32 px (its CIFAR-10) the pool has none.
RANDOM_OPS_WITH_CROP = ("resized_crop", *RANDOM_OPS)
RESIZED_CROP_FROM = 64


def random_pool(image_size: int) -> tuple[str, ...]:
    """The operations the `random` preset draws from at this image size."""
    return RANDOM_OPS_WITH_CROP if image_size >= RESIZED_CROP_FROM else RANDOM_OPS


# torchvision's grayscale weights (ITU-R 601-2 luma), used by contrast and saturation.
_LUMA = (0.2989, 0.587, 0.114)


def describe(preset: str) -> str:
    """One line saying what a preset does (for logs and the README)."""
    if preset not in _DESCRIPTIONS:
        raise unknown_name("augmentation", preset, PRESETS)
    return f"{preset}: {_DESCRIPTIONS[preset]}"


def crop_padding_px(crop_padding: int | str, image_size: int) -> int:
    """The crop presets' padding in pixels: the train key `crop_padding` as given, or for "auto"
    an eighth of the image, the share CIFAR's customary 4 px is of 32 px. A fixed 4 px would
    move a 12-px image by a third of its width and keep little of what it shows."""
    if crop_padding == "auto":
        return image_size // 8
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
        raise ConfigError(f"crop_padding={crop_padding!r} must be a whole number of pixels >= 0 "
                          f"or auto")
    return crop_padding


def build(preset: str, image_size: int, *, crop_padding: int | str = "auto"):
    """The augmentation `aug(x, generator) -> x'` of a preset for square images of `image_size`.

    crop_padding: the zero padding of the random crop (crop, standard, standard+rotate), in
    pixels, or "auto" to scale it with the image (`crop_padding_px`).
    """
    if preset not in _DESCRIPTIONS:
        raise unknown_name("augmentation", preset, PRESETS)
    pad = crop_padding_px(crop_padding, image_size)
    return {
        "none": _identity,
        "flip": functools.partial(_crop_flip, pad=0, flip=True),
        "crop": functools.partial(_crop_flip, pad=pad, flip=False),
        "standard": functools.partial(_crop_flip, pad=pad, flip=True),
        "standard+rotate": functools.partial(_standard_rotate, pad=pad),
        "resized_crop+flip": _resized_crop_flip,
        "color": _flip_jitter,
        "flip+brightness_hue": _flip_brightness_hue,
        "random": functools.partial(_random, pool=random_pool(image_size)),
    }[preset]


# --- presets ---------------------------------------------------------------------------------


def _identity(x, generator):
    return x.clone()  # a new tensor like every other preset's, so callers may write into it


def _crop_flip(x, generator, *, pad, flip):
    """Shift each image by up to ±pad px with zero fill and mirror half of them: one gather.

    Output pixel (i, j) of image b reads the padded image at (i + dy_b, j + dx_b), or at column
    W - 1 - j + dx_b when b is mirrored, so crop and flip cost a single pass over the batch.
    """
    b, c, h, w = x.shape
    dev = x.device
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=generator, device=dev)
    rows = dy + torch.arange(h, device=dev)  # (B, H)
    cols = dx + torch.arange(w, device=dev)  # (B, W)
    if flip:
        mirror = torch.rand(b, 1, generator=generator, device=dev) < 0.5
        cols = torch.where(mirror, cols.flip(1), cols)
    index = rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]
    padded = F.pad(x, (pad, pad, pad, pad)).flatten(2)
    return padded.gather(2, index.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def _standard_rotate(x, generator, *, pad):
    x = _crop_flip(x, generator, pad=pad, flip=True)
    angle = _uniform(generator, x, -15.0, 15.0)
    return _warp(x, _forward_map(angle))


def _flip_jitter(x, generator):
    return color_jitter(_crop_flip(x, generator, pad=0, flip=True), generator)


def _flip_brightness_hue(x, generator):
    """Study 3's Perceiver IO recipe on CIFAR-10: flip + ColorJitter(brightness=0.5, hue=0.25)."""
    x = _crop_flip(x, generator, pad=0, flip=True)
    return color_jitter(x, generator, brightness=0.5, contrast=0.0, saturation=0.0, hue=0.25)


def _resized_crop_flip(x, generator):
    """Study 1's recipe: RandomResizedCrop(scale=(0.8, 1), ratio=(0.9, 1.1)) + flip."""
    x = _resized_crop(x, generator, scale=(0.8, 1.0), ratio=(0.9, 1.1))
    return _crop_flip(x, generator, pad=0, flip=True)


def choose_ops(batch: int, generator, device=None, pool=RANDOM_OPS) -> torch.Tensor:
    """(B, len(pool)) bool: which operations of the pool each image gets.

    Like study 3's RandomChoice of 1-4 successive draws: the count is uniform in 1..4 and the
    draws are independent, with replacement; an op drawn twice is applied once. This is the first
    thing `random` draws, so a clone of the generator tells a test what the batch got.
    """
    n = len(pool)
    count = torch.randint(1, 5, (batch, 1, 1), generator=generator, device=device)
    draws = torch.randint(0, n, (batch, 4, 1), generator=generator, device=device)
    drawn = draws == torch.arange(n, device=device)  # (B, 4, n) one-hot
    used = torch.arange(4, device=device)[:, None] < count  # (B, 4, 1): the first `count` draws
    return (drawn & used).any(1)


def _random(x, generator, *, pool):
    """Study 3's random augmentation; see RANDOM_OPS for the order.

    Order: the op mask, then (if the pool has it) a random resized crop of the images that drew
    it, colour jitter, equalise, autocontrast, sharpness, and one resampling for flips, rotation
    and affine. The crop's parameters are drawn for every image, so the draws do not depend on
    the data.
    """
    b, _, h, w = x.shape
    ops = choose_ops(b, generator, x.device, pool)
    if pool[0] == "resized_crop":
        cropped = ops[:, 0, None, None, None]
        x = torch.where(cropped, _resized_crop(x, generator), x)
        ops = ops[:, 1:]
    take = ops[:, :, None, None, None]  # (B, 8, 1, 1, 1): broadcasts against (B, C, H, W)
    x = torch.where(take[:, 0], color_jitter(x, generator), x)
    x = torch.where(take[:, 1], equalize(x), x)
    x = torch.where(take[:, 2], autocontrast(x), x)
    x = torch.where(take[:, 3], sharpen(x), x)

    # The geometric ops as forward maps, identity where not chosen:
    # flips, then rotation, then affine (rotation, translation, scale, x-shear).
    hflip, vflip, rotate, affine = ops[:, 4:].unbind(1)
    signs = torch.stack([torch.where(hflip, -1.0, 1.0), torch.where(vflip, -1.0, 1.0)], -1)
    spin = _forward_map(_uniform(generator, x, 0.0, 180.0) * rotate)
    spin[:, :, :2] *= signs[:, None, :]  # spin @ diag(sign_x, sign_y, 1): flip first
    params = _uniform(generator, x, -1.0, 1.0, n=5) * affine  # 0 where not chosen: identity
    angle, shift_x, shift_y, scale, shear = params
    tilt = _forward_map(
        15 * angle, 1 + 0.2 * scale, 15 * shear, 0.2 * w * shift_x, 0.2 * h * shift_y
    )
    # tilt @ spin as a broadcast sum: 3x3 products need no cuBLAS, whose deterministic mode
    # would ask for an environment variable
    forward = (tilt[:, :, :, None] * spin[:, None, :, :]).sum(2)
    moved = ops[:, 4:].any(1)[:, None, None, None]
    return torch.where(moved, _warp(x, forward), x)


# --- operations on whole batches ---------------------------------------------------------------


def color_jitter(x, generator, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.2):
    """ColorJitter(brightness, contrast, saturation, hue) per image, in a fixed order: brightness,
    contrast, saturation, hue.

    torchvision shuffles the four per call; a fixed order keeps the batch one set of tensor ops.
    One-channel images get brightness and contrast only; all factors are drawn either way (a
    strength of 0 gives the factor 1, which changes nothing).
    """
    b, c = x.shape[:2]
    unit = 2 * torch.rand(3, b, 1, 1, 1, generator=generator, device=x.device) - 1
    factor = [1 + s * u for s, u in zip((brightness, contrast, saturation), unit, strict=True)]
    turns = _uniform(generator, x, -hue, hue)
    x = (x * factor[0]).clamp(0, 1)
    mean = _gray(x).mean((1, 2, 3), keepdim=True)
    x = (factor[1] * x + (1 - factor[1]) * mean).clamp(0, 1)
    if c != 3:
        return x
    x = (factor[2] * x + (1 - factor[2]) * _gray(x)).clamp(0, 1)
    return _shift_hue(x, turns)


def equalize(x):
    """Histogram equalisation of each image and channel on its 256 levels, as PIL/torchvision do.

    PIL's rule: step = (pixels - count of the brightest level present) // 255; the level v maps to
    (pixels below v + step // 2) // step; a channel with step 0 is left as it is.
    """
    b, c, h, w = x.shape
    level = (x * 255).round().long().reshape(b * c, h * w)
    # One histogram per (image, channel) row: where each level starts in the row's sorted
    # levels. Not bincount (it waits on the GPU to learn its output size) nor scatter_add (in
    # deterministic mode CUDA takes a path that waits too): sort and searchsorted never wait.
    edges = torch.arange(257, device=x.device).expand(b * c, 257).contiguous()
    starts = torch.searchsorted(level.sort(dim=1).values, edges)
    hist = starts[:, 1:] - starts[:, :-1]
    step = (h * w - hist.gather(1, level.amax(1, keepdim=True))) // 255
    below = F.pad(hist.cumsum(1), (1, 0))[:, :-1]  # pixels strictly below each level
    lut = ((below + step // 2) // step.clamp(min=1)).clamp(0, 255)
    out = (lut.gather(1, level).to(x.dtype) / 255).view(b, c, h, w)
    return torch.where((step > 0).view(b, c, 1, 1), out, x)


def autocontrast(x):
    """Stretch each image and channel to span [0, 1]; a flat channel is left as it is."""
    low = x.amin((2, 3), keepdim=True)
    span = x.amax((2, 3), keepdim=True) - low
    flat = span == 0
    low = torch.where(flat, 0.0, low)
    span = torch.where(flat, 1.0, span)
    return ((x - low) / span).clamp(0, 1)


def sharpen(x, factor=2.0):
    """PIL's ImageEnhance.Sharpness: extrapolate away from its 3x3 smoothed image (13 = 5 + 8).

    The one-pixel border is left as it is, as PIL and torchvision do.
    """
    c = x.shape[1]
    kernel = torch.ones(c, 1, 3, 3, dtype=x.dtype, device=x.device)
    kernel[..., 1, 1] = 5
    smooth = F.conv2d(x, kernel / 13, groups=c)  # (B, C, H - 2, W - 2)
    out = x.clone()
    out[..., 1:-1, 1:-1] = (factor * x[..., 1:-1, 1:-1] + (1 - factor) * smooth).clamp(0, 1)
    return out


# --- helpers -------------------------------------------------------------------------------------


def _uniform(generator, like, low, high, n=None):
    """(B,) or (n, B) uniform draws in [low, high) on `like`'s device, one per image."""
    shape = (like.shape[0],) if n is None else (n, like.shape[0])
    u = torch.rand(shape, generator=generator, device=like.device)
    return low + (high - low) * u


def _gray(x):
    if x.shape[1] != 3:
        return x
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _shift_hue(x, turns):
    """Turn each image's hue by `turns` of the colour circle, in HSV as PIL and torchvision do.

    A hue shift keeps each pixel's largest and smallest channel, so only the hue is computed,
    in sixths of the circle; the way back is HSV -> RGB in closed form: channel n (5, 3, 1 for
    R, G, B) = max - (max - min) * clamp(min(k, 4 - k), 0, 1) with k = (n + hue) mod 6.
    """
    r, g, b = x.unbind(1)
    top, bottom = x.amax(1), x.amin(1)
    chroma = top - bottom
    safe = torch.where(chroma > 0, chroma, 1.0)  # grey pixels: any hue, output stays grey
    hue = torch.where(
        top == r, (g - b) / safe, torch.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = hue + 6 * turns.view(-1, 1, 1)
    n = 5 - 2 * torch.arange(3, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)  # 5, 3, 1
    k = (n + hue.unsqueeze(1)).remainder(6)
    return top.unsqueeze(1) - chroma.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1)


def _forward_map(angle, scale=1.0, shear=0.0, shift_x=0.0, shift_y=0.0):
    """(B, 3, 3) maps, input to output pixel positions relative to the image centre.

    translate . rotate . scale . x-shear, angles in degrees; positive angles turn the image
    counter-clockwise on screen (y points down), as torchvision does.
    """
    zero = torch.zeros_like(angle)
    turn = torch.deg2rad(angle)
    slant = torch.deg2rad(zero + shear).tan()
    cos, sin = turn.cos() * scale, turn.sin() * scale
    rows = [cos, cos * slant + sin, zero + shift_x, -sin, cos - sin * slant, zero + shift_y]
    return torch.stack([*rows, zero, zero, zero + 1], -1).view(-1, 3, 3)


def _warp(x, forward):
    """Resample each image under its forward map: bilinear, zeros outside."""
    _, _, h, w = x.shape
    # grid_sample wants, for each output pixel, where to read in the input: the inverse map,
    # written out (no linalg: cheap, and nothing waits on the GPU), then in grid units, which
    # run from -1 to 1 across the image (2 / w per pixel across, 2 / h down).
    a, b, shift_x = forward[:, 0].unbind(1)
    c, d, shift_y = forward[:, 1].unbind(1)
    det = a * d - b * c
    a, b, c, d = d / det, -b / det, -c / det, a / det
    back_x, back_y = -(a * shift_x + b * shift_y), -(c * shift_x + d * shift_y)
    rows = [a, b * h / w, back_x * 2 / w, c * w / h, d, back_y * 2 / h]
    return _sample(x, torch.stack(rows, 1).view(-1, 2, 3).to(x.dtype))


def _sample(x, theta, padding="zeros"):
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _resized_crop(x, generator, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)):
    """RandomResizedCrop(scale, ratio) of every image back to its size, bilinear (default:
    study 3's scale 0.5-1 and torchvision's ratio 3/4-4/3).

    torchvision retries a box that does not fit; here its sides are clipped to the image instead,
    which keeps it one draw per image.
    """
    area = _uniform(generator, x, *scale)
    ratio = _uniform(generator, x, math.log(ratio[0]), math.log(ratio[1])).exp()
    width = (area * ratio).sqrt().clamp(max=1)  # fractions of the image's sides
    height = (area / ratio).sqrt().clamp(max=1)
    where_x, where_y = _uniform(generator, x, -1.0, 1.0, n=2)  # box centre within the slack
    zero = torch.zeros_like(width)
    theta = torch.stack(
        [width, zero, where_x * (1 - width), zero, height, where_y * (1 - height)], -1
    ).view(-1, 2, 3)
    # "border": a box on the image's edge reads the edge pixel out to the edge itself, as
    # torchvision's resize does, instead of blending in zeros there
    return _sample(x, theta.to(x.dtype), padding="border")
