"""Loss, accuracy and predictions of a network on one split, and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from imgzoo.training.device import autocast
from imgzoo.training.device_data import DeviceData

# `eval_batch_size: auto`. On the CPU the activations of a 1000-image batch spill out of the
# caches: batches of 128 evaluate the mixer, resnet18 and the ViT 1.5-2x faster, the MLP about as
# fast (docs/performance.md). A GPU wants large batches.
EVAL_BATCH_AUTO = {"cuda": 1000, "cpu": 128}


def eval_batch_size(cfg: dict, device: torch.device) -> int:
    """The run's evaluation batch size, `auto` resolved for the device."""
    if cfg["eval_batch_size"] == "auto":
        return EVAL_BATCH_AUTO["cuda" if device.type == "cuda" else "cpu"]
    return cfg["eval_batch_size"]


@dataclass
class Evaluation:
    loss: float  # mean cross-entropy (no label smoothing)
    acc: float
    predictions: np.ndarray | None = None  # the predicted class of every image, when asked for


@torch.inference_mode()
def evaluate(
    net: torch.nn.Module,
    data: DeviceData,
    split: str,
    batch_size: int,
    *,
    predictions: bool = False,
    precision: str = "auto",
) -> Evaluation:
    """`net` in eval mode on every image of `split`, without augmentation, in the run's
    `precision` (`train.precision`)."""
    net.eval()
    # Sums stay on the device until the end: no GPU sync per batch. float64, as the Python
    # float they replace, so the sums are the same to the bit.
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.device)
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    preds = []
    for x, y in data.eval_batches(split, batch_size):
        with autocast(data.device, precision):
            logits = net(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        pred = logits.argmax(1)
        correct += (pred == y).sum()
        if predictions:
            preds.append(pred)
    n = data.size(split)
    return Evaluation(
        loss=loss_sum.item() / n,
        acc=correct.item() / n,
        predictions=torch.cat(preds).cpu().numpy() if predictions else None,
    )


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (classes x classes): rows the true class, columns the predicted one.

    A head wider than the classes (model argument head_outputs) can predict an id that is no
    class: such a prediction is wrong, has no column, and is left out of its row's sum.
    """
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    inside = predictions < num_classes
    np.add.at(confusion, (labels[inside], predictions[inside]), 1)
    return confusion
