"""Perceiver (Jaegle et al. 2021) for images, laid out as study 3's perceiver-pytorch models.

Each pixel is one input token: its channel values plus Fourier features of its (row, column)
position. A small learned latent array reads the pixels by cross-attention and then thinks by
self-attention; depth repeats of [cross-attend, self_per_cross_attn self-attention blocks]. Every
attention and feed-forward is pre-LayerNorm with a residual; feed-forwards are GEGLU, 4× wide.
The layout (and so the parameter count) follows the library study 3 used, perceiver-pytorch 0.7.x:
293,362 / 1,151,730 / 4,428,262 parameters for its medium / large / xl CIFAR-10 models. So does
the dropout, which study 3's dropout ablation is about: attn_dropout on each attention's output
(after its output projection), ff_dropout between GEGLU and the feed-forward's last Linear.
(perceiver-pytorch 0.8.0 moved them onto the attention weights and after that Linear.)

The blocks here are shared with Perceiver IO (perceiver_io.py).
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn


def fourier_features(size: int, num_bands: int, max_freq: float) -> torch.Tensor:
    """(size * size, 2 * (2 * num_bands + 1)) features of a square grid's positions.

    Each axis coordinate x in [-1, 1] gives sin(π f x), cos(π f x) for num_bands frequencies f
    spaced evenly from 1 to max_freq / 2 (the Nyquist frequency of a max_freq-sample grid), and x
    itself.
    """
    coords = torch.linspace(-1.0, 1.0, size)
    grid = torch.stack(torch.meshgrid(coords, coords, indexing="ij"), dim=-1)  # (h, w, 2)
    freqs = torch.linspace(1.0, max_freq / 2, num_bands)
    angles = grid[..., None] * freqs * math.pi  # (h, w, 2, bands)
    features = torch.cat([angles.sin(), angles.cos(), grid[..., None]], dim=-1)
    return rearrange(features, "h w a f -> (h w) (a f)")


class Attention(nn.Module):
    """Pre-norm multi-head attention from queries (query_dim) to a context (context_dim, or the
    queries themselves); returns the update, the caller adds the residual."""

    def __init__(self, query_dim, context_dim=None, *, heads, dim_head, dropout=0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm = nn.LayerNorm(query_dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim or query_dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, query_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        context = x if self.norm_context is None else self.norm_context(context)
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.drop(self.to_out(rearrange(out, "b h n d -> b n (h d)")))


class FeedForward(nn.Module):
    """Pre-norm GEGLU feed-forward: Linear(dim, 2·mult·dim) -> a · GELU(gate) -> dropout ->
    Linear."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, dim * mult * 2)
        self.down = nn.Linear(dim * mult, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.up(self.norm(x)).chunk(2, dim=-1)
        return self.down(self.drop(a * F.gelu(gate)))


class SelfBlock(nn.Module):
    def __init__(self, dim, heads, dim_head, attn_dropout, ff_dropout):
        super().__init__()
        self.attn = Attention(dim, heads=heads, dim_head=dim_head, dropout=attn_dropout)
        self.ff = FeedForward(dim, dropout=ff_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ff(x)


class CrossBlock(nn.Module):
    def __init__(self, dim, context_dim, heads, dim_head, attn_dropout, ff_dropout):
        super().__init__()
        self.attn = Attention(
            dim, context_dim, heads=heads, dim_head=dim_head, dropout=attn_dropout
        )
        self.ff = FeedForward(dim, dropout=ff_dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x, context)
        return x + self.ff(x)


class PerceiverLayer(nn.Module):
    """One cross-attention into the input, then self_per_cross_attn latent self-attentions."""

    def __init__(
        self,
        latent_dim,
        input_dim,
        cross_heads,
        cross_dim_head,
        latent_heads,
        latent_dim_head,
        self_per_cross_attn,
        attn_dropout,
        ff_dropout,
    ):
        super().__init__()
        self.cross = CrossBlock(
            latent_dim, input_dim, cross_heads, cross_dim_head, attn_dropout, ff_dropout
        )
        self.latent = nn.ModuleList(
            SelfBlock(latent_dim, latent_heads, latent_dim_head, attn_dropout, ff_dropout)
            for _ in range(self_per_cross_attn)
        )

    def forward(self, latents: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        latents = self.cross(latents, inputs)
        for block in self.latent:
            latents = block(latents)
        return latents


class Perceiver(nn.Module):
    def __init__(
        self,
        *,
        num_classes,
        image_size,
        in_chans,
        depth,
        num_latents,
        latent_dim,
        cross_heads,
        latent_heads,
        cross_dim_head,
        latent_dim_head,
        attn_dropout,
        ff_dropout,
        num_freq_bands,
        max_freq,
        self_per_cross_attn,
        weight_tie_layers,
    ):
        super().__init__()
        positions = fourier_features(image_size, num_freq_bands, max_freq)
        self.register_buffer("positions", positions, persistent=False)
        input_dim = in_chans + positions.shape[1]
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim))

        def layer() -> PerceiverLayer:
            return PerceiverLayer(
                latent_dim,
                input_dim,
                cross_heads,
                cross_dim_head,
                latent_heads,
                latent_dim_head,
                self_per_cross_attn,
                attn_dropout,
                ff_dropout,
            )

        # Weight tying (the paper's recurrent form): the first layer has its own weights, all
        # later repeats share one set. ModuleList holds the same module several times; its
        # parameters are counted and trained once.
        first = layer()
        rest = [layer()] * (depth - 1) if weight_tie_layers and depth > 1 else None
        self.layers = nn.ModuleList([first, *(rest or (layer() for _ in range(depth - 1)))])
        self.head = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = rearrange(x, "b c h w -> b (h w) c")
        positions = self.positions.to(x.dtype).expand(x.shape[0], -1, -1)
        inputs = torch.cat([pixels, positions], dim=-1)
        latents = repeat(self.latents, "n d -> b n d", b=x.shape[0])
        for layer in self.layers:
            latents = layer(latents, inputs)
        return self.head(latents.mean(dim=1))


def build(
    num_classes: int,
    image_size: int,
    in_chans: int,
    *,
    depth: int = 4,
    num_latents: int = 32,
    latent_dim: int = 32,
    cross_heads: int = 1,
    latent_heads: int = 8,
    cross_dim_head: int = 16,
    latent_dim_head: int = 16,
    attn_dropout: float = 0.2,
    ff_dropout: float = 0.2,
    num_freq_bands: int = 6,
    max_freq: float = 10.0,
    self_per_cross_attn: int = 2,
    weight_tie_layers: bool = False,
) -> Perceiver:
    """A Perceiver; the defaults are study 3's base (`perceiver-medium`) model."""
    # arguments checked by imgzoo.models.arguments (create calls it)
    return Perceiver(
        num_classes=num_classes,
        image_size=image_size,
        in_chans=in_chans,
        depth=depth,
        num_latents=num_latents,
        latent_dim=latent_dim,
        cross_heads=cross_heads,
        latent_heads=latent_heads,
        cross_dim_head=cross_dim_head,
        latent_dim_head=latent_dim_head,
        attn_dropout=attn_dropout,
        ff_dropout=ff_dropout,
        num_freq_bands=num_freq_bands,
        max_freq=max_freq,
        self_per_cross_attn=self_per_cross_attn,
        weight_tie_layers=weight_tie_layers,
    )
