"""`synthetic`: procedurally generated, class-conditional images; any size, channels, classes.

A sample adds two class-conditional parts to mid-grey:
- a *layout*: its class's smooth random prototype (per channel, oriented low-frequency waves
  plus a soft blob, partly shared by all classes), rolled by a random shift of up to
  image_size/8 each way. A per-pixel template sees it, blurred by the shifts;
- a *texture*: a patch of the class's own oriented waves, at a random place and with a random
  phase. Its expected value is zero at every pixel, so only a non-linear model sees it, and one
  that looks everywhere alike (convolutions and pooling) learns it fastest;
then random contrast and brightness, and pixel noise. Measured at 16×16 with the default sizes
(a throwaway script, 5 epochs for the networks): nearest class mean 50-60%, logistic regression
75%, a 3-layer MLP 86-89%, a 3-layer CNN 100%; at 32×32 logistic regression 84%, MLP 91%,
CNN 99.8%.

Fully determined by `generator_seed`; train and test samples come from different random
streams over the same class prototypes and textures.
"""

from __future__ import annotations

import hashlib

import numpy as np

from imgzoo.data import options as opts
from imgzoo.data.readers import Raw

OPTIONS = {
    "image_size": 32,
    "channels": 3,
    "num_classes": 10,
    "train_size": 5000,
    "test_size": 1000,
    "generator_seed": 0,
}

WAVES = 3  # sinusoids per prototype channel
SHARED = 0.6  # weight of the pattern every class shares, against 1.0 for the class's own
TEXTURE_WAVES = 2  # class-specific sinusoids per channel whose phase is random per sample
LAYOUT = 0.25  # weight of the fixed-phase layout prototype (unit std): what a linear model sees
PATCH_CENTRE = (0.25, 0.75)  # range of the texture patch's centre, in image widths
PATCH_WIDTH = 0.2  # std of the patch's Gaussian envelope, in image widths
TEXTURE = 2.0  # weight of the random-phase texture: visible only to non-linear models
CONTRAST = (0.6, 1.4)  # per-sample multiplier of the pattern
BRIGHTNESS = 0.08  # std of the per-sample offset, in [0, 1] pixel units
# Std of the per-pixel noise at 16×16, grown by √(image_size / 16): bigger images give a model
# more pixels to pool, and without this 32×32 would be far easier than 16×16.
NOISE = 0.16
AMPLITUDE = 0.18  # pattern std in pixel units, around mid-grey 0.5
CHUNK_VALUES = 1 << 22  # pixel values generated at a time: bounds the float64 working set


def check_options(name: str, options: dict) -> None:
    for key, minimum in (("image_size", 4), ("channels", 1), ("num_classes", 2),
                         ("train_size", 2), ("test_size", 1), ("generator_seed", 0)):
        opts.integer(name, options, key, minimum=minimum)


def read(name: str, options: dict) -> Raw:
    size, channels = options["image_size"], options["channels"]
    classes, seed = options["num_classes"], options["generator_seed"]
    rng = np.random.default_rng([seed, 0])
    protos = prototypes(rng, classes, channels, size)
    waves = textures(rng, classes, channels)
    train_x, train_y = samples(np.random.default_rng([seed, 1]), protos, waves,
                               options["train_size"])
    test_x, test_y = samples(np.random.default_rng([seed, 2]), protos, waves,
                             options["test_size"])
    digest = hashlib.sha256()
    for array in (train_x, train_y, test_x, test_y):
        digest.update(array.tobytes())
    return Raw(train_x, train_y, test_x, test_y, [f"class{c}" for c in range(classes)],
               source=f"synthetic(generator_seed={seed})", source_sha256=digest.hexdigest())


def prototypes(rng: np.random.Generator, classes: int, channels: int, size: int) -> np.ndarray:
    """float64 (classes, size, size, channels), each channel of each class of unit std."""
    own = np.stack([_pattern(rng, channels, size) for _ in range(classes)])
    shared = _pattern(rng, channels, size)
    protos = own + SHARED * shared
    protos -= protos.mean(axis=(1, 2), keepdims=True)
    return protos / protos.std(axis=(1, 2), keepdims=True)


def _pattern(rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    """A smooth random (size, size, channels) image: oriented waves plus one Gaussian blob."""
    y, x = np.mgrid[0:size, 0:size] / size
    out = np.zeros((size, size, channels))
    for c in range(channels):
        for _ in range(WAVES):
            angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            cycles = rng.uniform(1.0, 3.5)  # per image side: low frequencies look image-like
            along = x * np.cos(angle) + y * np.sin(angle)
            out[..., c] += rng.uniform(0.5, 1.0) * np.cos(2 * np.pi * cycles * along + phase)
        cy, cx = rng.uniform(0.2, 0.8, size=2)
        width = rng.uniform(0.1, 0.25)
        out[..., c] += 2 * rng.choice([-1, 1]) * np.exp(
            -((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
    return out


def textures(rng: np.random.Generator, classes: int, channels: int) -> np.ndarray:
    """Per class, channel and wave: (angle, cycles per image side), shape (classes, C, W, 2)."""
    angle = rng.uniform(0, np.pi, size=(classes, channels, TEXTURE_WAVES))
    cycles = rng.uniform(2.0, 5.0, size=(classes, channels, TEXTURE_WAVES))
    return np.stack([angle, cycles], axis=-1)


def _texture(rng: np.random.Generator, waves: np.ndarray, size: int) -> np.ndarray:
    """(k, size, size, C) sums of the given waves (k, C, W, 2), each with a random phase."""
    y, x = np.mgrid[0:size, 0:size] / size
    angle, cycles = waves[..., 0], waves[..., 1]
    phase = rng.uniform(0, 2 * np.pi, size=angle.shape)
    along = x[..., None, None, None] * np.cos(angle) + y[..., None, None, None] * np.sin(angle)
    out = np.cos(2 * np.pi * cycles * along + phase).sum(axis=-1)  # (H, W, k, C)
    out = np.moveaxis(out, (0, 1), (1, 2)) / np.sqrt(waves.shape[2] / 2)
    # A patch of texture at a random place: a model must find it anywhere (what convolutions
    # and pooling do well and a dense layer learns only slowly).
    cy, cx = rng.uniform(*PATCH_CENTRE, size=(2, len(waves), 1, 1, 1))
    return out * np.exp(-((y[..., None] - cy) ** 2 + (x[..., None] - cx) ** 2)
                        / (2 * PATCH_WIDTH**2))


def samples(rng: np.random.Generator, protos: np.ndarray, waves: np.ndarray,
            n: int) -> tuple[np.ndarray, np.ndarray]:
    """n samples (uint8 n×H×W×C, int64 labels) with balanced, shuffled labels."""
    classes, size = protos.shape[0], protos.shape[1]
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    images = np.empty((n, *protos.shape[1:]), dtype=np.uint8)
    max_shift = max(size // 8, 1)
    grid = np.arange(size)
    chunk = max(1, CHUNK_VALUES // protos[0].size)
    for start in range(0, n, chunk):
        y = labels[start : start + chunk]
        k = len(y)
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=(2, k, 1, 1))
        rows = (grid[None, :, None] - dy) % size  # a circular shift (roll) per sample
        cols = (grid[None, None, :] - dx) % size
        pattern = protos[y[:, None, None], rows, cols]  # (k, H, W, C)
        pattern = LAYOUT * pattern + TEXTURE * _texture(rng, waves[y], size)
        contrast = rng.uniform(*CONTRAST, size=(k, 1, 1, 1))
        brightness = rng.normal(0, BRIGHTNESS, size=(k, 1, 1, 1))
        noise = rng.normal(0, NOISE * np.sqrt(size / 16), size=pattern.shape)
        pixels = 0.5 + AMPLITUDE * contrast * pattern + brightness + noise
        images[start : start + k] = np.rint(np.clip(pixels, 0, 1) * 255)
    return images, labels


def image_size(options: dict) -> int:
    return options["image_size"]
