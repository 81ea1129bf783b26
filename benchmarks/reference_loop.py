"""The reference loop of benchmarks/train_step.py: training written the way the three write-ups
do it.

A torchvision dataset of PIL images (torchvision.datasets.CIFAR10's __getitem__: one
`Image.fromarray` per image), per-image torchvision transforms (RandomCrop(size, padding) +
RandomHorizontalFlip + ToTensor + Normalize), a `DataLoader(shuffle=True, num_workers=2)` and a
plain loop that reads the loss and the accuracy back every step (kentaroy47's
vision-transformers-cifar10 loop, which study 3 built on). Same model, optimizer and batch size
as imgzoo's run. Only the benchmark imports this module (and so torchvision and PIL).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import VisionDataset

from imgzoo.models import create
from imgzoo.training.step import build_optimizer


class ArrayImages(VisionDataset):
    """uint8 N×H×W×C images in memory, served as PIL images (as torchvision's CIFAR10 does)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        super().__init__(root=None, transform=transform)
        self.data = images[..., 0] if images.shape[-1] == 1 else images  # 1 channel: mode "L"
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        img, target = self.data[index], self.targets[index]
        img = Image.fromarray(img)
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def train_transform(image_size: int, augment: str, mean, std, normalize: bool = True):
    """The write-ups' CIFAR recipe; `none` drops the random part. Padding as imgzoo's crop."""
    steps = []
    if augment != "none":
        steps += [
            transforms.RandomCrop(image_size, padding=max(1, image_size // 8)),
            transforms.RandomHorizontalFlip(),
        ]
    steps.append(transforms.ToTensor())
    if normalize:
        steps.append(transforms.Normalize(tuple(map(float, mean)), tuple(map(float, std))))
    return transforms.Compose(steps)


class ReferenceLoop:
    """The write-ups' training loop, run a few steps at a time so that the bench can alternate
    it with imgzoo's steps (a change of machine load then hits both alike).

    Each call starts the loader afresh, as a new epoch does, and shuts its workers down at the
    end: workers left running would fill their queue while imgzoo's steps run, taking CPU from
    those and handing the reference batches made for free. `skip` leaves untimed the first
    steps, which wait for the workers to start.
    """

    def __init__(
        self, spec, ds, device: torch.device, num_workers: int = 2, amp: bool = False
    ):
        """`amp`: bf16 autocast and pinned host memory (the write-ups ran fp32 from pageable
        memory: `amp` compares like with like on a GPU, where imgzoo runs bf16)."""
        cfg = spec.train
        torch.manual_seed(spec.id.seed)
        self.device = device
        self.net = create(
            spec.settings.family,
            num_classes=ds.num_classes,
            image_size=ds.image_size,
            in_chans=ds.channels,
            **spec.settings.model_args,
        ).to(device)
        raw = getattr(self.net, "input_normalization", "dataset") == "raw"
        transform = train_transform(ds.image_size, cfg["augment"], ds.mean, ds.std, not raw)
        trainset = ArrayImages(ds.train_x, ds.train_y, transform)
        self.batch_size = cfg["batch_size"]
        self.amp = amp and device.type == "cuda"
        self.trainloader = DataLoader(
            trainset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=num_workers,
            pin_memory=self.amp,
        )
        self.criterion = torch.nn.CrossEntropyLoss()
        self.optimizer = build_optimizer(self.net, cfg)
        self.batches = None  # the loader's iterator while a call runs
        self.train_loss, self.correct, self.total = 0.0, 0, 0

    def _next(self):
        if self.batches is not None:
            batch = next(self.batches, None)
            if batch is not None:
                return batch
        self.batches = iter(self.trainloader)  # a new epoch: new workers, as in the write-ups
        return next(self.batches)

    def steps(self, n: int, skip: int = 0) -> list[float]:
        """Durations of n full-batch steps, after `skip` untimed ones."""
        net, criterion, optimizer = self.net, self.criterion, self.optimizer
        net.train()
        self.batches = iter(self.trainloader)
        times: list[float] = []
        last = time.perf_counter()
        done = 0
        while len(times) < n:
            inputs, targets = self._next()
            inputs = inputs.to(self.device, non_blocking=self.amp)
            targets = targets.to(self.device, non_blocking=self.amp)
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                outputs = net(inputs)
                if isinstance(outputs, tuple):  # auxiliary heads
                    outputs, aux = outputs
                    loss = criterion(outputs, targets) + sum(criterion(a, targets) for a in aux)
                else:
                    loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()

            self.train_loss += loss.item()
            _, predicted = outputs.max(1)
            self.total += targets.size(0)
            self.correct += predicted.eq(targets).sum().item()

            now = time.perf_counter()
            if done >= skip and len(targets) == self.batch_size:
                times.append(now - last)
            last = now
            done += 1
        self.batches = None  # shuts the workers down (and reaps them)
        self.last_steps = done
        return times
