"""The operations augmentation is made of, each on a whole batch on its device.

x is float (B, C, H, W) in [0, 1]; every random number comes from the caller's generator, one
draw (or `n`) per image in a fixed order that does not depend on the data. Per-image choices are
masks (an operation is computed for the whole batch and kept where chosen), so shapes stay static
and nothing waits on the GPU. The presets (`imgzoo.augment`) are built from these.
"""

import math

import torch
import torch.nn.functional as F

# torchvision's grayscale weights (ITU-R 601-2 luma), used by contrast and saturation.
LUMA = (0.2989, 0.587, 0.114)


def crop_flip(x, generator, *, pad, flip):
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


def rotate_0_180(x, generator):
    """RandomRotation(degrees=(0, 180)): nearest neighbour (torchvision's default), zero fill."""
    return warp(x, forward_map(uniform(generator, x, 0.0, 180.0)), mode="nearest")


def random_affine(x, generator):
    """RandomAffine(15, translate=(0.2, 0.2), scale=(0.8, 1.2), shear=15), bilinear, zero fill.

    As torchvision draws them: angle and x-shear uniform in +-15 degrees, scale in 0.8-1.2, and
    a shift of a whole number of pixels, up to 20% of each side.
    """
    _, _, h, w = x.shape
    angle, shift_x, shift_y, scale, shear = uniform(generator, x, -1.0, 1.0, n=5)
    return warp(x, forward_map(
        15 * angle, 1 + 0.2 * scale, 15 * shear,
        (0.2 * w * shift_x).round(), (0.2 * h * shift_y).round(),
    ))


def color_jitter(x, generator, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.2):
    """ColorJitter(brightness, contrast, saturation, hue) per image, its four adjustments in an
    order drawn per image, as torchvision draws one per call.

    One-channel images get brightness and contrast only; all factors are drawn either way (a
    strength of 0 gives the factor 1, which changes nothing). Draws: the three factors, the hue
    turn, then the order (`jitter_order`).
    """
    b, c = x.shape[:2]
    unit = 2 * torch.rand(3, b, 1, 1, 1, generator=generator, device=x.device) - 1
    factor = [1 + s * u for s, u in zip((brightness, contrast, saturation), unit, strict=True)]
    turns = uniform(generator, x, -hue, hue)
    order = jitter_order(b, generator, x.device)

    def contrast_of(t):
        return (factor[1] * t + (1 - factor[1]) * gray(t).mean((1, 2, 3), keepdim=True))

    adjustments = [
        lambda t: t * factor[0],
        contrast_of,
        lambda t: factor[2] * t + (1 - factor[2]) * gray(t) if c == 3 else t,
        lambda t: shift_hue(t, turns) if c == 3 else t,
    ]
    for step in order.unbind(1):  # each image's first adjustment, then its second, ...
        before = x
        for index, adjust in enumerate(adjustments):
            chosen = (step == index).view(b, 1, 1, 1)
            x = torch.where(chosen, adjust(before).clamp(0, 1), x)
    return x


def jitter_order(batch: int, generator, device=None) -> torch.Tensor:
    """(B, 4): each image's order of brightness (0), contrast (1), saturation (2), hue (3)."""
    return torch.rand(batch, 4, generator=generator, device=device).argsort(1)


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


def uniform(generator, like, low, high, n=None):
    """(B,) or (n, B) uniform draws in [low, high) on `like`'s device, one per image."""
    shape = (like.shape[0],) if n is None else (n, like.shape[0])
    u = torch.rand(shape, generator=generator, device=like.device)
    return low + (high - low) * u


def gray(x):
    if x.shape[1] != 3:
        return x
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def shift_hue(x, turns):
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


def forward_map(angle, scale=1.0, shear=0.0, shift_x=0.0, shift_y=0.0):
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


def warp(x, forward, mode="bilinear"):
    """Resample each image under its forward map (bilinear or nearest), zeros outside."""
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
    return sample(x, torch.stack(rows, 1).view(-1, 2, 3).to(x.dtype), mode=mode)


def sample(x, theta, mode="bilinear"):
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, align_corners=False)


def resized_crop(x, generator, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), tries=10):
    """RandomResizedCrop(scale, ratio) of every image back to its size, bilinear (default:
    study 3's scale 0.5-1 and torchvision's ratio 3/4-4/3).

    As torchvision: a box of whole pixels, its area and aspect ratio drawn up to `tries` times
    until it fits the image (else the whole image: every ratio range here holds 1), at a whole
    pixel position; the box alone is resized, so its edge pixels are not blended with the
    pixels beyond it. All `tries` boxes are drawn for every image, so the draws never depend on
    the data.
    """
    b, _, h, w = x.shape
    area = h * w * uniform(generator, x, *scale, n=tries).T  # (B, tries)
    aspect = uniform(generator, x, math.log(ratio[0]), math.log(ratio[1]), n=tries).T.exp()
    box_w, box_h = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (box_w >= 1) & (box_w <= w) & (box_h >= 1) & (box_h <= h)
    first = fits.int().argmax(1, keepdim=True)  # the first box that fits (0 if none does)
    any_fits = fits.any(1)
    box_w = torch.where(any_fits, box_w.gather(1, first)[:, 0], w)
    box_h = torch.where(any_fits, box_h.gather(1, first)[:, 0], h)
    top = (uniform(generator, x, 0.0, 1.0) * (h - box_h + 1)).floor()
    left = (uniform(generator, x, 0.0, 1.0) * (w - box_w + 1)).floor()
    # the box in grid units (the image spans -1..1), and its edge pixels' centres
    x0, x1 = 2 * left / w - 1, 2 * (left + box_w) / w - 1
    y0, y1 = 2 * top / h - 1, 2 * (top + box_h) / h - 1
    zero = torch.zeros_like(x0)
    theta = torch.stack([box_w / w, zero, (x0 + x1) / 2, zero, box_h / h, (y0 + y1) / 2], -1)
    grid = F.affine_grid(theta.view(-1, 2, 3).to(x.dtype), list(x.shape), align_corners=False)
    low = torch.stack([x0 + 1 / w, y0 + 1 / h], -1).view(b, 1, 1, 2).to(x.dtype)
    high = torch.stack([x1 - 1 / w, y1 - 1 / h], -1).view(b, 1, 1, 2).to(x.dtype)
    grid = torch.maximum(torch.minimum(grid, high), low)
    return F.grid_sample(x, grid, mode="bilinear", align_corners=False)
