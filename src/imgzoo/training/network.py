"""The model of a run on its device, and how it wants its input."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from imgzoo.models import catalog, count_params, create, file_source
from imgzoo.spec import Settings


@dataclass
class Network:
    model: torch.nn.Module  # its weights: what checkpoints, model.pt and model_best.pt hold
    # what training steps call: `model`, or torch.compile's wrapper. Evaluation calls `model`:
    # its batch sizes (1000 and a ragged last batch per split) would each compile again (12 s
    # for resnet18 on an H200, more than an eager evaluation of a whole epoch takes).
    net: torch.nn.Module
    normalize: bool  # inputs normalised with the dataset's mean/std; False: pixels in [0, 1]
    channels_last: bool  # inputs (and weights) in channels-last memory format
    num_params: int


def build_network(settings: Settings, prepared, device: torch.device) -> Network:
    """The run's model (its family with its model_args) for the prepared dataset's shape
    (`prepared`: an `imgzoo.data.Prepared` or a `imgzoo.data.store.Shape`).

    Its initial weights come from torch's global generator: seed it first.
    """
    cfg = settings.train
    if settings.model_file_sha256 is not None:  # the network the run was planned with
        file_source.check_unchanged(catalog.model_file(settings.family)[0],
                                    settings.model_file_sha256)
    model = create(
        settings.family,
        num_classes=prepared.num_classes,
        image_size=prepared.image_size,
        in_chans=prepared.channels,
        **settings.model_args,
    ).to(device)
    if cfg["input_stats"] != "auto" and hasattr(model, "standardise_with"):
        # a model that standardises its own input (pretrained) takes the given constants too
        model.standardise_with(cfg["input_stats"]["mean"], cfg["input_stats"]["std"])
    # Channels-last lets oneDNN (CPU) and cuDNN (GPU) skip layout conversions in every
    # convolution: resnet18 evaluates 1.3x faster on one CPU core, trains up to 1.2x faster.
    channels_last = bool(cfg["channels_last"]) and is_convnet(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Network(
        model=model,
        net=torch.compile(model) if cfg["compile"] else model,
        normalize=getattr(model, "input_normalization", "dataset") != "raw",
        channels_last=channels_last,
        num_params=count_params(model),
    )


def is_convnet(model: torch.nn.Module) -> bool:
    """More convolutions than a transformer's patch embedding: channels-last pays off."""
    return sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) > 1
