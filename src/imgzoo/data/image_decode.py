"""One image file's bytes -> a square uint8 array of the configured size and channels.

Whatever the file holds is brought to one of two modes, L (channels: 1) or RGB (channels: 3):
- EXIF orientation is applied first, so a photo stands as its camera showed it;
- 16-bit grayscale is scaled to 8 bits (65535 -> 255): Pillow's own conversion would clip
  every value above 255 to white;
- transparency (RGBA, LA, a palette or grayscale with a transparent colour) is composited onto
  white, the background such images are drawn on; without that, transparent pixels would show
  whatever colour they happen to store;
- palette, CMYK, YCbCr, 1-bit and the rest go through Pillow's conversion; colour becomes gray
  by ITU-R 601-2 luma, gray becomes RGB by repeating it.
Then the image is resized to `size` × `size`, one of RESIZE_MODES.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESIZE_MODES = {
    "crop": "shorter side to image_size, then the centre square",
    "stretch": "both sides to image_size, the aspect ratio not kept",
    "pad": "longer side to image_size, then black borders to a square",
}
# torchvision's Resize default, so that a model sees what a torchvision pipeline would give it.
RESAMPLE = Image.Resampling.BILINEAR
ORIENTATION = 0x0112  # the EXIF tag
SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # "I": how some readers give 16-bit gray
WHITE = (255, 255, 255, 255)


def decode(data: bytes, size: int, channels: int, resize: str,
           format_hint: str | None = None) -> np.ndarray:
    """uint8 (size, size, channels); Pillow's exception when the bytes are not a readable image.

    `format_hint` (Pillow's name of the format the file's extension says) is tried first: it
    spares Pillow asking every reader whether the bytes are its own, a tenth of the time of a
    small PNG. A file whose extension lies is still read, by the full search.
    """
    if format_hint is not None:
        try:
            return _decode(Image.open(io.BytesIO(data), formats=(format_hint,)), size,
                           channels, resize)
        except UnidentifiedImageError:
            pass
    return _decode(Image.open(io.BytesIO(data)), size, channels, resize)


def _decode(opened: Image.Image, size: int, channels: int, resize: str) -> np.ndarray:
    with opened as image:
        if image.format == "JPEG":
            # Let the JPEG decoder scale by 1/2, 1/4 or 1/8 where the result stays at least
            # `size` on both sides: a large photo then decodes several times faster.
            image.draft(None, (size, size))
        image = upright(image)
        image = to_mode(image, "L" if channels == 1 else "RGB")
        image = resized(image, size, resize)
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (most images have none: checked first,
    because transposing copies the image)."""
    if image.getexif().get(ORIENTATION, 1) in (None, 1):
        image.load()
        return image
    return ImageOps.exif_transpose(image)


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` in mode L or RGB, by the rules in the module's docstring."""
    if image.mode in SIXTEEN_BIT:
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        image = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")
    if "transparency" in image.info or image.mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        background = Image.new("RGBA", image.size, WHITE)
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image if image.mode == mode else image.convert(mode)


def resized(image: Image.Image, size: int, resize: str) -> Image.Image:
    width, height = image.size
    if (width, height) == (size, size):
        return image
    if resize == "stretch":
        return image.resize((size, size), RESAMPLE)
    if resize == "crop":
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return image.resize((size, size), RESAMPLE, box=(left, top, left + side, top + side))
    scale = size / max(width, height)  # pad
    inner = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = Image.new(image.mode, (size, size), 0)
    canvas.paste(image.resize(inner, RESAMPLE), ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return canvas
