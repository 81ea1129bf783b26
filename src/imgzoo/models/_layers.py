"""Layers that study 2 (CIFAR-100 ResNet variants) added around its ResNets."""

import torch
from torch import nn


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


class MixStyle(nn.Module):
    """MixStyle (Zhou et al., ICLR 2021): mixes per-sample feature statistics within a batch.

    With probability p, each sample's channel-wise mean and std are replaced by a Beta(alpha,
    alpha) mix of its own and those of a random other sample in the batch. A regulariser: in
    eval mode it is the identity. Variance is the population one, so 1x1 feature maps (deep
    stages of small images) give zero instead of NaN.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.p = p
        self.alpha = alpha
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The coin is tossed on the CPU generator: no device sync, still seeded by manual_seed.
        if not self.training or torch.rand(()).item() >= self.p:
            return x
        batch = x.shape[0]
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sig = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + self.eps).sqrt().detach()
        normed = (x - mu) / sig
        # Sampled in float32 whatever x is: Beta sampling is not implemented for every dtype.
        concentration = torch.tensor(self.alpha, device=x.device)
        beta = torch.distributions.Beta(concentration, concentration)
        lam = beta.sample((batch, 1, 1, 1)).to(x.dtype)
        perm = torch.randperm(batch, device=x.device)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        return normed * sig_mix + mu_mix
