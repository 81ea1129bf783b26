"""Input standardisation inside the model, for any family: the `normalizer` model argument.

`imgzoo.models.create` takes `normalizer` from every model's arguments (one of
arguments.INPUT_NORMALIZERS):
- "fixed": the model is left as built; the training loop standardises its input with the
  dataset's mean/std (unless the model normalises its own input, as a timm model fine-tuned
  from a `pretrained_file` does).
- "none": the model gets raw [0, 1] pixels and does not standardise them at all.
- "running", "running_per_channel": the model gets raw pixels and standardises them with
  running statistics (study 2's Normalizer), one scalar over all pixels or one per channel.

A model given raw pixels says so with `input_normalization = "raw"` (docs/CONTRACTS.md). The
running normaliser is a child module, `input_normalizer`, applied by a forward pre-hook: the
model keeps its class, attributes and first-layer view, and its state_dict carries the statistics.
"""

import torch
from torch import nn

from imgzoo.errors import ConfigError
from imgzoo.models.arguments import INPUT_NORMALIZERS, check_value


class RunningNormalizer(nn.Module):
    """Standardises raw [0, 1] input with running statistics, so no dataset mean/std is needed.

    Like study 2's Normalizer: an exponential moving average (momentum 0.01) of the mean and
    (population) variance, updated only in training mode, taken from the first training batch
    outright rather than decayed from an arbitrary start. One scalar over all pixels by default,
    or one per channel. Unlike BatchNorm it always divides by the running statistics, so a
    sample's output does not depend on the rest of its batch. Before the first training batch
    (mean 0, var 1) it passes the input through.
    """

    def __init__(self, channels: int | None = None, momentum: float = 0.01, eps: float = 1e-6):
        super().__init__()
        self.per_channel = channels is not None
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(channels or 1))
        self.register_buffer("running_var", torch.ones(channels or 1))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._update(x)
        shape = (1, -1, 1, 1) if self.per_channel else (1, 1, 1, 1)
        mean = self.running_mean.view(shape)
        std = (self.running_var + self.eps).sqrt().view(shape)
        return (x - mean) / std

    @torch.no_grad()
    def _update(self, x: torch.Tensor) -> None:
        dims = (0, 2, 3) if self.per_channel else (0, 1, 2, 3)
        stats = self.running_mean
        mean = x.mean(dim=dims).reshape(stats.shape).to(stats.dtype)
        var = x.var(dim=dims, unbiased=False).reshape(stats.shape).to(stats.dtype)
        # torch.where instead of an `if`: reading the flag would stall a GPU every step.
        weight = torch.where(self.initialised, self.momentum, 1.0).to(stats.dtype)
        self.running_mean.lerp_(mean, weight)
        self.running_var.lerp_(var, weight)
        self.initialised.fill_(True)


def _normalise_input(model: nn.Module, args: tuple) -> tuple:
    return (model.input_normalizer(args[0]), *args[1:])


def attach(model: nn.Module, normalizer: str, in_chans: int, family: str) -> nn.Module:
    """`model` set up for `normalizer` (see the module docstring); returns the same module."""
    check_value(family, "normalizer", normalizer, INPUT_NORMALIZERS)
    if normalizer == "fixed":
        return model
    if getattr(model, "input_normalization", "dataset") == "raw":
        raise ConfigError(
            f"model family '{family}' normalises its own input; leave normalizer at 'fixed'"
        )
    model.input_normalization = "raw"
    if normalizer.startswith("running"):
        per_channel = normalizer == "running_per_channel"
        model.input_normalizer = RunningNormalizer(in_chans if per_channel else None)
        model.register_forward_pre_hook(_normalise_input)
    return model
