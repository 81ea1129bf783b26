"""Perceiver IO (Jaegle et al. 2021) as a classifier.

Encoder: one cross-attention (+ feed-forward) from a learned latent array into the input tokens,
then `depth` latent self-attention blocks. Decoder: cross-attention from learned output queries
into the latents, then a linear layer to logits.

Inputs (input_mode):
- flat (study 3): the whole image is ONE token of C·H·W features. With a single key the
  encoder's attention weights are all 1, so this is in effect an MLP on the raw pixels with a
  latent bottleneck; it is kept because that is what study 3 measured. By default the token is
  the context as is (study 3: context width C·H·W); `dim` puts a Linear to `dim` in front.
- pixels: one token per pixel with Fourier position features, as in the Perceiver.

Queries: `single` (study 3) is one learned query of width queries_dim (default num_classes)
decoded by Linear(queries_dim, num_classes); `per_class` is one query per class, each decoded to
its own logit. Study 3's notebook drew a (batch, 1, num_classes) query with torch.rand and passed
its `.data`, so it was never trained and each batch position had its own; here the one query is
learned (a declared difference).

attn_dropout and ff_dropout (0 in study 3: its perceiver-pytorch 0.7.x Perceiver IO had none)
sit where the Perceiver's do (perceiver.py).
"""

import torch
from einops import rearrange, repeat
from torch import nn

from imgzoo.models.perceiver import (
    Attention,
    CrossBlock,
    FeedForward,
    SelfBlock,
    fourier_features,
)


class PerceiverIO(nn.Module):
    def __init__(
        self,
        *,
        num_classes,
        image_size,
        in_chans,
        input_mode,
        dim,
        depth,
        num_latents,
        latent_dim,
        cross_heads,
        latent_heads,
        cross_dim_head,
        latent_dim_head,
        queries_dim,
        query,
        decoder_ff,
        attn_dropout,
        ff_dropout,
        num_freq_bands,
        max_freq,
        weight_tie_layers,
    ):
        super().__init__()
        self.input_mode = input_mode
        if input_mode == "pixels":
            positions = fourier_features(image_size, num_freq_bands, max_freq)
            self.register_buffer("positions", positions, persistent=False)
            token_dim = in_chans + positions.shape[1]
        else:
            token_dim = in_chans * image_size**2
        self.embed = nn.Linear(token_dim, dim) if dim else nn.Identity()
        context_dim = dim or token_dim

        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim))
        self.encoder = CrossBlock(
            latent_dim, context_dim, cross_heads, cross_dim_head, attn_dropout, ff_dropout
        )

        def block() -> SelfBlock:
            return SelfBlock(latent_dim, latent_heads, latent_dim_head, attn_dropout, ff_dropout)

        # weight tying shares one self-attention block across all depths
        if weight_tie_layers:
            self.layers = nn.ModuleList([block()] * depth)
        else:
            self.layers = nn.ModuleList(block() for _ in range(depth))

        num_queries = num_classes if query == "per_class" else 1
        self.queries = nn.Parameter(torch.randn(num_queries, queries_dim))
        self.decoder = Attention(
            queries_dim,
            latent_dim,
            heads=cross_heads,
            dim_head=cross_dim_head,
            dropout=attn_dropout,
        )
        self.decoder_ff = FeedForward(queries_dim, dropout=ff_dropout) if decoder_ff else None
        self.to_logits = nn.Linear(queries_dim, 1 if query == "per_class" else num_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mode == "flat":
            return rearrange(x, "b c h w -> b 1 (c h w)")
        pixels = rearrange(x, "b c h w -> b (h w) c")
        positions = self.positions.to(x.dtype).expand(x.shape[0], -1, -1)
        return torch.cat([pixels, positions], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.embed(self.tokens(x))
        latents = self.encoder(repeat(self.latents, "n d -> b n d", b=x.shape[0]), context)
        for block in self.layers:
            latents = block(latents)
        queries = repeat(self.queries, "n d -> b n d", b=x.shape[0])
        # no residual around the decoder's attention (as in the reference library): the query
        # is the same for every image, so a residual would only add a constant
        out = self.decoder(queries, latents)
        if self.decoder_ff is not None:
            out = out + self.decoder_ff(out)
        logits = self.to_logits(out)  # (B, 1, classes) or (B, classes, 1)
        return logits.flatten(1)


def build(
    num_classes: int,
    image_size: int,
    in_chans: int,
    *,
    input_mode: str = "flat",
    dim: int | None = None,
    depth: int = 2,
    num_latents: int = 32,
    latent_dim: int = 64,
    cross_heads: int = 1,
    latent_heads: int = 8,
    cross_dim_head: int = 128,
    latent_dim_head: int = 128,
    queries_dim: int | None = None,
    query: str = "single",
    decoder_ff: bool = False,
    attn_dropout: float = 0.0,
    ff_dropout: float = 0.0,
    num_freq_bands: int = 6,
    max_freq: float = 10.0,
    weight_tie_layers: bool = False,
) -> PerceiverIO:
    """A Perceiver IO classifier; the defaults are study 3's CIFAR-10 model."""
    # arguments checked by imgzoo.models.arguments (create calls it)
    return PerceiverIO(
        num_classes=num_classes,
        image_size=image_size,
        in_chans=in_chans,
        input_mode=input_mode,
        dim=dim,
        depth=depth,
        num_latents=num_latents,
        latent_dim=latent_dim,
        cross_heads=cross_heads,
        latent_heads=latent_heads,
        cross_dim_head=cross_dim_head,
        latent_dim_head=latent_dim_head,
        queries_dim=queries_dim or num_classes,
        query=query,
        decoder_ff=decoder_ff,
        attn_dropout=attn_dropout,
        ff_dropout=ff_dropout,
        num_freq_bands=num_freq_bands,
        max_freq=max_freq,
        weight_tie_layers=weight_tie_layers,
    )
