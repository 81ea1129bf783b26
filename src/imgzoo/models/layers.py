"""MixStyle, the feature-statistics regulariser that study 2 put between its ResNet stages."""

import torch
from torch import nn


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
        # The concentration is filled on the device (a tensor made from a Python float would be
        # a copy the GPU waits for) and not validated (validation reads values back).
        concentration = torch.full((batch, 1, 1, 1), self.alpha, device=x.device)
        beta = torch.distributions.Beta(concentration, concentration, validate_args=False)
        lam = beta.sample().to(x.dtype)
        perm = torch.randperm(batch, device=x.device)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        return normed * sig_mix + mu_mix
