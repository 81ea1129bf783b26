"""Decode many image files into one uint8 array, in worker processes, with progress.

Files go to the workers in chunks of consecutive rows; each chunk comes back as its decoded
images, the files that failed (with Pillow's reason) and each file's sha256, and is copied into
its rows of the one preallocated array: the set is held once, plus the chunks in flight.
Processes, not threads: decoding holds the GIL for much of its time.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from imgzoo.data.image_decode import decode
from imgzoo.data.image_files import format_of
from imgzoo.progress import CountProgress

CHUNK_BYTES = 64 << 20  # decoded bytes per chunk at most: bounds the memory of chunks in flight
CHUNKS = 20  # a large set is split into about this many chunks (one progress line each in a log)
MIN_CHUNK = 250  # files; a small set is one chunk, one line
MIN_FOR_WORKERS = 2000  # below this, starting processes costs more than it saves


@dataclass
class Decoded:
    images: np.ndarray  # uint8 (N, size, size, channels); rows of failed files are zeros
    failed: dict[int, str]  # row -> why the file could not be read or decoded
    sha256: str  # of every file's path and content, in row order


def worker_count() -> int:
    """The cores this process may use (a SLURM job's or a cgroup's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def decode_files(root: Path, files: list[str], *, size: int, channels: int, resize: str,
                 progress: CountProgress, workers: int | None = None,
                 stop_at_failure: bool = True) -> Decoded:
    """Decode `files` (paths relative to `root`). With `stop_at_failure`, no new chunk starts
    once a file has failed (the caller reports it): a broken set fails fast."""
    images = np.empty((len(files), size, size, channels), dtype=np.uint8)
    rows = max(1, min(max(MIN_CHUNK, -(-len(files) // CHUNKS)),
                      CHUNK_BYTES // (size * size * channels)))
    chunks = [(start, files[start : start + rows]) for start in range(0, len(files), rows)]
    args = (str(root), size, channels, resize)
    workers = workers or worker_count()
    if workers == 1 or len(files) < MIN_FOR_WORKERS:
        results = ((start, decode_chunk(names, *args)) for start, names in chunks)
    else:
        results = _in_workers(chunks, args, workers)
    digests: list[bytes] = [b""] * len(files)
    failed: dict[int, str] = {}
    for start, (block, bad, hashes) in results:
        images[start : start + len(block)] = block
        digests[start : start + len(hashes)] = hashes
        failed.update({start + row: reason for row, reason in bad.items()})
        progress.advance(len(block))
        if failed and stop_at_failure:
            break
    results.close()  # a stop: chunks not started yet never start
    combined = hashlib.sha256()
    for name, digest in zip(files, digests, strict=True):
        combined.update(name.encode() + b"\0" + digest)
    return Decoded(images, failed, combined.hexdigest())


def _in_workers(chunks: list[tuple[int, list[str]]], args: tuple,
                workers: int) -> Iterator[tuple[int, tuple]]:
    """(start, decode_chunk's result) of each chunk, as worker processes finish them. At most
    two chunks per worker are in flight: enough to keep each busy, few enough that memory stays
    bounded and that a caller who stops early (a failed file) waits for little."""
    pending = iter(chunks)
    running = {}
    with ProcessPoolExecutor(workers, mp_context=_start_method()) as pool:
        try:
            while True:
                for start, names in itertools.islice(pending, 2 * workers - len(running)):
                    running[pool.submit(decode_chunk, names, *args)] = start
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()
        finally:
            for future in running:
                future.cancel()


def _start_method():
    """How worker processes start. A fork is the fastest, and asks nothing of the caller's
    `__main__` (spawned workers import it again: a script without a main guard, or stdin, breaks
    them). But a process that has loaded torch holds threads, and a fork would copy the locks
    they hold (`imgzoo train` prepares a missing dataset): there a fork server starts them."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "torch" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _read(path: str) -> bytes:
    """A file's bytes, by the system calls alone: half the time of `open().read()` for the few
    kB of a small image, where the file object's setup is most of the cost. Read to the end,
    since a network file system may return less than asked."""
    fd = os.open(path, os.O_RDONLY)
    try:
        blocks = []
        while block := os.read(fd, 1 << 20):
            blocks.append(block)
        return b"".join(blocks)
    finally:
        os.close(fd)


def decode_chunk(files: list[str], root: str, size: int, channels: int,
                 resize: str) -> tuple[np.ndarray, dict[int, str], list[bytes]]:
    """(images, {row: reason} of the files that failed, sha256 of each file) of one chunk."""
    block = np.zeros((len(files), size, size, channels), dtype=np.uint8)
    bad, hashes = {}, []
    for row, name in enumerate(files):
        try:
            content = _read(os.path.join(root, name))
        except OSError as e:
            bad[row] = f"unreadable ({e.strerror})"
            hashes.append(b"")
            continue
        hashes.append(hashlib.sha256(content).digest())
        try:
            block[row] = decode(content, size, channels, resize, format_of(name))
        except UnidentifiedImageError:  # its message names an in-memory buffer, not the file
            bad[row] = "not an image Pillow can read (unknown format or damaged header)"
        # Pillow's readers raise many kinds of exception on a damaged file (OSError, SyntaxError,
        # ValueError, struct.error, EOFError, DecompressionBombError...): all mean "not a
        # readable image", and the one line names the file whatever the kind.
        except Exception as e:
            bad[row] = f"damaged image ({e.__class__.__name__}: {' '.join(str(e).split())})"
    return block, bad, hashes
