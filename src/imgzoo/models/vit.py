"""Vision Transformer for small images, with study 2's attention variants.

One class covers study 2's three ViTs: `vit` (post-norm, ReLU feed-forward: with qkv_bias, layer
for layer PyTorch's nn.TransformerEncoderLayer), `vitn` (pre-norm, GELU) and `vit-aux` (extra
heads part-way up).
The attention is written out (no fused kernel) because the variants all change the logits:
Transformer-XL relative attention, the diagonal mask and the learned temperature of Locality
Self-Attention, and shifted patch tokens (the last two from "Vision Transformer for Small-Size
Datasets", arXiv 2112.13492). Sequences here are short (17 to 145 tokens), so explicit logits
cost little.

init says how the weights start:
- "vit": the learned vectors (CLS token, learned position table, relative attention's u and v)
  drawn N(0, 0.02) as in the ViT papers, every layer drawn on its own.
- "torch": what study 2's code got from PyTorch by setting no init: the learned vectors from
  torch.randn (N(0, 1)); post-norm layers initialised as nn.TransformerEncoderLayer does
  (Xavier-uniform q/k/v projection, zero projection biases), and all the layers of one
  nn.TransformerEncoder (every run of layers up to a head) starting as copies of one layer,
  because nn.TransformerEncoder deep-copies the layer it is given.
"""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from imgzoo.models import joint_checks
from imgzoo.models._common import (
    to_tiles,
)


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions -> (N, dim) sin/cos features, frequencies 1 ... 1/10000 (Transformer)."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=positions.device)
    omega = torch.exp(-math.log(1e4) * steps / half)
    angles = positions.float()[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(grid_h: int, grid_w: int, dim: int, *, split: bool = True) -> torch.Tensor:
    """Fixed 2-D position codes for a grid of patches, (grid_h * grid_w, dim), row-major.

    split=True gives half the channels to the row and half to the column. split=False adds one
    full-width code for the row to the same code for the column, as study 2 did; that makes the
    code of (r, c) equal to that of (c, r), which is why it is not the default.
    """
    rows = torch.arange(grid_h).repeat_interleave(grid_w)
    cols = torch.arange(grid_w).repeat(grid_h)
    if split:
        return torch.cat([sinusoid(rows, dim // 2), sinusoid(cols, dim // 2)], dim=1)
    return sinusoid(rows, dim) + sinusoid(cols, dim)


class Attention(nn.Module):
    """Multi-head self-attention with the study-2 options.

    qkv_bias: a bias on the q/k/v projection (nn.MultiheadAttention's in_proj_bias).
    rel_attn: Transformer-XL logits (q + u)·k_j + (q + v)·W_R R_{i-j}: the four terms content-
    content, content-position, global content bias u and global position bias v, with R a 1-D
    sinusoid of the signed distance between tokens (CLS is token 0); u and v start
    N(0, vector_std²).
    diag_mask: a token may not attend to itself (its logit becomes the dtype's minimum).
    temperature: one learned scalar per layer; "log" learns log(1/τ) from 0 and multiplies the
    logits by exp(param), "vanilla" learns τ from 1 and divides.
    `qkv`, `logits` and `attend` are the written-out steps of `forward` (which runs the fused
    kernel where it can): a caller may look at the logits a layer computes for its tokens.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        attn_dropout: float = 0.0,
        qkv_bias: bool = False,
        vector_std: float = 0.02,
        rel_attn: bool = False,
        diag_mask: bool = False,
        temperature: str = "none",
    ):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.to_out = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_dropout)
        self.rel_attn = rel_attn
        if rel_attn:
            self.to_pos = nn.Linear(dim, dim, bias=False)  # W_R
            self.pos_u = nn.Parameter(torch.randn(heads, dim // heads) * vector_std)
            self.pos_v = nn.Parameter(torch.randn(heads, dim // heads) * vector_std)
        self.diag_mask = diag_mask
        self.temperature = temperature
        if temperature == "log":
            self.log_inv_tau = nn.Parameter(torch.zeros(()))
        elif temperature == "vanilla":
            self.tau = nn.Parameter(torch.ones(()))

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Masked, scaled attention logits (B, heads, T, T) from q, k (B, heads, T, d)."""
        if self.rel_attn:
            t = q.shape[2]
            distance = torch.arange(t, device=q.device)
            distance = distance[:, None] - distance[None, :]  # i - j, in [-(t-1), t-1]
            table = sinusoid(torch.arange(-(t - 1), t, device=q.device), q.shape[1] * q.shape[3])
            rel = rearrange(self.to_pos(table.to(q.dtype)), "r (h d) -> h r d", h=self.heads)
            rel = rel[:, distance + t - 1]  # (h, i, j, d)
            u = self.pos_u[None, :, None, :]
            v = self.pos_v[None, :, None, :]
            logits = (q + u) @ k.transpose(-1, -2)
            logits = logits + torch.einsum("bhid,hijd->bhij", q + v, rel)
        else:
            logits = q @ k.transpose(-1, -2)
        logits = logits * self.scale
        if self.temperature == "log":
            logits = logits * self.log_inv_tau.exp()
        elif self.temperature == "vanilla":
            logits = logits / self.tau
        if self.diag_mask:
            eye = torch.eye(logits.shape[-1], dtype=torch.bool, device=logits.device)
            logits = logits.masked_fill(eye, torch.finfo(logits.dtype).min)
        return logits

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values (B, heads, T, d) of tokens x (B, T, dim)."""
        qkv = self.to_qkv(x)
        return tuple(rearrange(qkv, "b t (three h d) -> three b h t d", three=3, h=self.heads))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The attention written out: softmax of `logits`, dropout, times v (B, heads, T, d)."""
        return self.attn_drop(self.logits(q, k).softmax(dim=-1)) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)
        out = self.attend(q, k, v) if self.rel_attn else self._fused(q, k, v)
        return self.to_out(rearrange(out, "b h t d -> b t (h d)"))

    def _fused(self, q, k, v) -> torch.Tensor:
        """The same attention through torch's scaled_dot_product_attention: on a GPU its fused
        kernels never hold the (B, heads, T, T) logits, which at 96 px (577 tokens) and an
        evaluation batch of 1000 would take tens of GB (in deterministic mode the math kernel
        runs it: exact, but it holds them)."""
        if self.temperature == "log":  # the learned temperature scales the logits: scale q
            q = q * self.log_inv_tau.exp()
        elif self.temperature == "vanilla":
            q = q / self.tau
        mask = None
        if self.diag_mask:  # True: may attend; a token may not attend to itself
            mask = ~torch.eye(q.shape[2], dtype=torch.bool, device=q.device)
        dropout = self.attn_drop.p if self.training else 0.0
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, scale=self.scale
        )

    @torch.no_grad()
    def init_as_multihead_attention(self) -> None:
        """The q/k/v and output projections as nn.MultiheadAttention initialises them:
        Xavier-uniform over the stacked q/k/v matrix, both biases zero (the output weight keeps
        nn.Linear's draw, as there)."""
        nn.init.xavier_uniform_(self.to_qkv.weight)
        if self.to_qkv.bias is not None:
            nn.init.zeros_(self.to_qkv.bias)
        nn.init.zeros_(self.to_out.bias)


class Block(nn.Module):
    """One encoder layer. post: x = LN(x + f(x)) with a ReLU feed-forward and dropout on the
    attention weights (nn.TransformerEncoderLayer's defaults, study 2's `vit`); pre:
    x = x + f(LN(x)) with GELU (study 2's `vitn`)."""

    def __init__(self, dim, heads, mlp_ratio, dropout, norm, init, **attn_options):
        super().__init__()
        self.pre = norm == "pre"
        attn_dropout = 0.0 if self.pre else dropout
        self.attn = Attention(dim, heads, attn_dropout=attn_dropout, **attn_options)
        if init == "torch" and not self.pre:
            self.attn.init_as_multihead_attention()
        hidden = int(dim * mlp_ratio)
        self.ff = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU() if self.pre else nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre:
            x = x + self.drop(self.attn(self.norm1(x)))
            return x + self.drop(self.ff(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ff(x)))


class PatchEmbedding(nn.Module):
    """Non-overlapping p×p patches -> dim, as one strided convolution."""

    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(x), "b d h w -> b (h w) d")

    def filters(self) -> torch.Tensor:
        return self.proj.weight.mean(dim=1)  # (dim, p, p)


class ShiftedPatchEmbedding(nn.Module):
    """Shifted Patch Tokenization (arXiv 2112.13492): the image and its four half-patch diagonal
    shifts are stacked as channels, so each token also sees its neighbours' border pixels."""

    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        features = 5 * in_chans * patch_size**2
        self.norm = nn.LayerNorm(features)
        self.proj = nn.Linear(features, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.patch_size // 2
        h, w = x.shape[-2:]
        padded = F.pad(x, (s, s, s, s))
        # each crop of the zero-padded image is the image moved by (±s, ±s)
        shifts = [padded[..., dy : dy + h, dx : dx + w] for dy in (0, 2 * s) for dx in (0, 2 * s)]
        x = torch.cat([x, *shifts], dim=1)
        p = self.patch_size
        x = rearrange(x, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=p, p2=p)
        return self.proj(self.norm(x))

    def filters(self) -> torch.Tensor:
        p = self.patch_size
        return self.proj.weight.reshape(self.proj.out_features, -1, p, p).mean(dim=1)


def classifier(dim: int, hidden: int, num_classes: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(dim, num_classes)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_classes))


class ViT(nn.Module):
    def __init__(
        self,
        *,
        num_classes,
        image_size,
        in_chans,
        patch_size,
        dim,
        depth,
        heads,
        mlp_ratio,
        dropout,
        norm,
        pos,
        head_hidden,
        aux_heads,
        spt,
        init,
        **attn_options,
    ):
        super().__init__()
        embed = ShiftedPatchEmbedding if spt else PatchEmbedding
        self.patch_embed = embed(in_chans, dim, patch_size)
        grid = image_size // patch_size
        std = 1.0 if init == "torch" else 0.02  # torch.randn as it comes, or the ViT papers'
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * std)
        if pos == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, grid * grid, dim) * std)
        else:  # fixed: a buffer, so it is saved but never trained
            table = sincos_2d(grid, grid, dim, split=pos == "sincos2d")
            self.register_buffer("pos_embed", table[None], persistent=False)

        def block() -> Block:
            return Block(dim, heads, mlp_ratio, dropout, norm, init, vector_std=std,
                         **attn_options)

        self.blocks = nn.ModuleList(block() for _ in range(depth))
        if init == "torch" and norm == "post":
            # nn.TransformerEncoder deep-copies its one layer; study 2's vit-aux chained one
            # encoder per head, so each run of layers up to a head starts as copies of its first
            starts = [0, *sorted(aux_heads)]
            for start, end in zip(starts, [*starts[1:], depth], strict=True):
                for i in range(start + 1, end):
                    self.blocks[i] = copy.deepcopy(self.blocks[start])

        # Pre-norm leaves the residual stream un-normalised, so a final LayerNorm goes before
        # each head; post-norm blocks already end in one.
        def head() -> nn.Module:
            final_norm = nn.LayerNorm(dim) if norm == "pre" else nn.Identity()
            return nn.Sequential(final_norm, classifier(dim, head_hidden, num_classes))

        self.head = head()
        self.aux_after = sorted(aux_heads)
        self.aux_heads = nn.ModuleList(head() for _ in self.aux_after)

    def attention_layers(self) -> list[Attention]:
        return [block.attn for block in self.blocks]

    def forward(self, x: torch.Tensor):
        # position codes go on the patch tokens only; the CLS token is told apart by its content
        x = self.patch_embed(x) + self.pos_embed
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        aux = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if self.training and i in self.aux_after:
                aux.append(self.aux_heads[self.aux_after.index(i)](x[:, 0]))
        logits = self.head(x[:, 0])
        return (logits, aux) if self.training and self.aux_after else logits

    def first_layer_tiles(self) -> tuple[np.ndarray, str]:
        return to_tiles(self.patch_embed.filters()), "patch_embedding"


def build(
    num_classes: int,
    image_size: int,
    in_chans: int,
    *,
    patch_size: int = 8,
    dim: int = 256,
    depth: int = 12,
    heads: int = 4,
    mlp_ratio: float = 4,
    dropout: float = 0.1,
    norm: str = "post",
    pos: str = "sincos2d",
    head_hidden: int = 1024,
    qkv_bias: bool = False,
    init: str = "vit",
    rel_attn: bool = False,
    diag_mask: bool = False,
    temperature: str = "none",
    spt: bool = False,
    aux_heads: list[int] | tuple[int, ...] = (),
) -> ViT:
    """A ViT. aux_heads lists layer numbers (1 ... depth-1) after which an extra head classifies
    the CLS token during training: study 2's 3 blocks × 4 layers = depth 12, aux_heads [4, 8].
    qkv_bias: a bias on the q/k/v projection (nn.MultiheadAttention has one); init: see the
    module's docstring."""
    aux_heads = list(aux_heads or [])
    joint_checks.vit(image_size, patch_size, dim, heads, depth, pos, rel_attn, aux_heads)
    return ViT(
        num_classes=num_classes,
        image_size=image_size,
        in_chans=in_chans,
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_ratio=mlp_ratio,
        dropout=dropout,
        norm=norm,
        pos=pos,
        head_hidden=head_hidden,
        aux_heads=aux_heads,
        spt=spt,
        init=init,
        qkv_bias=qkv_bias,
        rel_attn=rel_attn,
        diag_mask=diag_mask,
        temperature=temperature,
    )
