"""Time preparing an image folder (target: >= 5,000 images/s for 32 px PNGs on 2 cores,
docs/performance.md), beside torchvision's ImageFolder + DataLoader decoding it for one epoch.

The folder: `--images` PNGs of 32×32 RGB in 10 class folders under train/ (`--test-share` of
them under test/), drawn by imgzoo's synthetic generator (smooth patterns and noise, so the
files compress like photographs do, not like flat colour). Made once in a temporary folder,
then: `imgzoo.data.prepare` into an HDF5 file, with the cores this process may use; and a
torchvision epoch over the same train/ folder (ToTensor only, batch 256, as many loader workers
as cores). Prints the images per second of each, by the wall clock and per second of CPU time
(this process and its workers together): on a machine others share, the wall clock says how
busy they kept it, the CPU time what the work itself costs.

    python benchmarks/prepare_imagefolder.py [--images 50000] [--repeats 1] [--folder DIR]

`--folder DIR` keeps the folder in DIR (made there once, reused by later calls). The load
average is printed beside the figures: on a shared machine they are worth only as much.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
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


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker processes), user + system."""
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_imgzoo(root: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of preparing the folder."""
    start, cpu = time.perf_counter(), cpu_seconds()
    data.prepare("bench", {"format": "imagefolder", "source": str(root), "image_size": SIZE},
                 out)
    return time.perf_counter() - start, cpu_seconds() - cpu


def time_torchvision(root: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, images) of one epoch over train/."""
    import torch
    from torchvision import datasets, transforms

    torch.set_num_threads(1)
    folder = datasets.ImageFolder(str(root / "train"), transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(folder, batch_size=256, shuffle=True,
                                         num_workers=worker_count())
    start, cpu = time.perf_counter(), cpu_seconds()
    seen = sum(len(labels) for _, labels in loader)
    del loader  # its workers end, and their CPU time is counted
    return time.perf_counter() - start, cpu_seconds() - cpu, seen


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
        seconds, cpu = (statistics.median(t[i] for t in ours) for i in (0, 1))
        print(f"imgzoo prepare: {seconds:.2f} s, {args.images / seconds:.0f} images/s; "
              f"CPU {cpu:.1f} s, {args.images / cpu:.0f} images per CPU-second (medians of "
              f"{args.repeats}, wall {', '.join(f'{t[0]:.2f}' for t in ours)} s; decode, split, "
              f"statistics and the HDF5 file; load average {os.getloadavg()[0]:.2f})",
              flush=True)
        seconds, cpu, seen = time_torchvision(root)
        print(f"torchvision ImageFolder + DataLoader, one epoch of train/: {seconds:.2f} s, "
              f"{seen / seconds:.0f} images/s; CPU {cpu:.1f} s, {seen / cpu:.0f} images per "
              f"CPU-second ({worker_count()} workers, ToTensor; load average "
              f"{os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
