"""What a long step prints: a live bar on a terminal, one plain line per epoch (a run) or per
chunk (preparing a dataset) otherwise, for job logs."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, epochs: int, label: str = "", stream=None):
        self.epochs = epochs
        self.label = f"{label} " if label else ""
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.epoch = 0
        self._last = 0.0
        self._t0 = time.perf_counter()

    def note(self, message: str) -> None:
        self._clear()
        print(f"{self.label}{message}", file=self.stream, flush=True)

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._t0 = time.perf_counter()

    def wants_update(self) -> bool:
        # Reading the loss forces a GPU sync: do it only when a terminal will show it.
        return self.live and time.perf_counter() - self._last > 0.25

    def step(self, done: int, total: int, loss: float) -> None:
        if not self.live:
            return
        self._last = time.perf_counter()
        rate = done / max(self._last - self._t0, 1e-9)
        print(
            f"\r{self.label}epoch {self.epoch}/{self.epochs} [{bar(done, total)}]"
            f" {done}/{total} loss {loss:.4f} {rate:.1f} it/s",
            end="",
            file=self.stream,
            flush=True,
        )

    def end_epoch(self, row: dict) -> None:
        self._clear()
        print(
            f"{self.label}epoch {row['epoch']}/{self.epochs}: "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} | "
            f"test acc {row['test_acc']:.4f} | subset acc {row['train_subset_acc']:.4f} | "
            f"lr {row['lr']:.2e} | {row['epoch_time']:.1f}s {row['images_per_s']:.0f} img/s",
            file=self.stream,
            flush=True,
        )

    def _clear(self) -> None:
        if self.live:
            print("\r\033[K", end="", file=self.stream)


class CountProgress:
    """Progress through `total` items (images being prepared, say), in chunks."""

    def __init__(self, total: int, what: str, label: str = "", stream=None):
        self.total, self.what = total, what
        self.label = f"{label} " if label else ""
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.done = 0
        self._t0 = time.perf_counter()

    def advance(self, count: int) -> None:
        self.done += count
        rate = self.done / max(time.perf_counter() - self._t0, 1e-9)
        text = (f"{self.label}{self.done}/{self.total} {self.what} "
                f"({100 * self.done / max(self.total, 1):.0f}%, {rate:.0f}/s)")
        if self.live:
            print(f"\r\033[K[{bar(self.done, self.total)}] {text}", end="", file=self.stream,
                  flush=True)
        else:
            print(text, file=self.stream, flush=True)

    def finish(self, message: str) -> None:
        """End the bar with a line saying what was done."""
        if self.live:
            print("\r\033[K", end="", file=self.stream)
        print(f"{self.label}{message}", file=self.stream, flush=True)


def bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "#" * filled + "." * (width - filled)
