"""Time preparing an image folder (target: >= 5,000 images/s for 32 px PNGs on 2 cores,
docs/performance.md), beside torchvision's ImageFolder + DataLoader decoding it for one epoch.

The folder: `--images` PNGs of 32×32 RGB in 10 class folders under train/ (`--test-share` of
them under test/), drawn by imgzoo's synthetic generator (smooth patterns and noise, so the
files compress like photographs do, not like flat colour). Made once in a temporary folder,
then: `imgzoo.data.prepare` into an HDF5 file, with the cores this process may use; and a
torchvision epoch over the same train/ folder (ToTensor only, batch 256, as many loader workers
as cores). Prints the images per second of each.

    python benchmarks/prepare_imagefolder.py [--images 50000] [--repeats 1] [--folder DIR]

`--folder DIR` keeps the folder in DIR (made there once, reused by later calls). The load
average is printed beside the figures: on a shared machine they are worth only as much.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgzoo import data
from imgzoo.data.decode_pool import worker_count
from imgzoo.data.readers import synthetic

CLASSES = 10
SIZE = 32


def make_folder(root: Path, images: int, test_share: float) -> None:
    from PIL import Image

    options = {**synthetic.OPTIONS, "image_size": SIZE, "num_classes": CLASSES,
               "train_size": images, "test_size": 1}
    x = synthetic.read("synthetic", options).train_x
    y = np.arange(images) % CLASSES
    n_test = int(images * test_share)
    for row in range(images):
        split = "test" if row < n_test else "train"
        folder = root / split / f"class{y[row]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[row]).save(folder / f"{row:06d}.png")


def time_imgzoo(root: Path, out: Path) -> float:
    start = time.perf_counter()
    data.prepare("bench", {"format": "imagefolder", "source": str(root), "image_size": SIZE},
                 out)
    return time.perf_counter() - start


def time_torchvision(root: Path) -> tuple[float, int]:
    import torch
    from torchvision import datasets, transforms

    torch.set_num_threads(1)
    folder = datasets.ImageFolder(str(root / "train"), transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(folder, batch_size=256, shuffle=True,
                                         num_workers=worker_count())
    start = time.perf_counter()
    seen = sum(len(labels) for _, labels in loader)
    return time.perf_counter() - start, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--test-share", type=float, default=1 / 6)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="keep (or reuse) the folder here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp) / "folder"
        start = time.perf_counter()
        if not (root / "train").is_dir():
            make_folder(root, args.images, args.test_share)
        made = time.perf_counter() - start
        size = sum(p.stat().st_size for p in root.rglob("*.png"))
        print(f"folder: {args.images} PNGs of {SIZE}x{SIZE} RGB, {size / args.images:.0f} "
              f"bytes each on average, ready in {made:.1f} s; {worker_count()} cores; load "
              f"average {os.getloadavg()[0]:.2f}", flush=True)
        ours = []
        for repeat in range(args.repeats):
            log = io.StringIO()
            sys.stderr, saved = log, sys.stderr  # the progress lines: not this report's
            try:
                ours.append(time_imgzoo(root, Path(tmp) / f"prepared{repeat}.h5"))
            finally:
                sys.stderr = saved
        seconds = statistics.median(ours)
        print(f"imgzoo prepare: {seconds:.2f} s, {args.images / seconds:.0f} images/s "
              f"(median of {args.repeats}: {', '.join(f'{s:.2f}' for s in ours)} s; "
              f"decode, split, statistics and the HDF5 file; load average "
              f"{os.getloadavg()[0]:.2f})", flush=True)
        seconds, seen = time_torchvision(root)
        print(f"torchvision ImageFolder + DataLoader, one epoch of train/: {seconds:.2f} s, "
              f"{seen / seconds:.0f} images/s ({worker_count()} workers, ToTensor; load average "
              f"{os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
