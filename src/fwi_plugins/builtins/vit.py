"""The ``vit`` backbone: a Vision Transformer from shot gathers to a velocity map.

Gathers ``(B, S, T, R)`` are cut into time x receiver patches with the shots as
channels; a patch embedding that is a reshape plus one ``nn.Linear`` (no strided
convolution) keeps it fast on CPU. With ``time_decimation`` k > 1 the traces are first
low-passed along time by a fixed anti-aliasing filter and every k-th sample is kept, so
the patches, the token grid and the positional embedding are those of ``ceil(T / k)``
samples; the filter is neither a parameter nor saved, and with k = 1 there is none.
Encoder blocks use PyTorch's fused ``scaled_dot_product_attention``, with separately
named ``qkv``, ``proj``, ``fc1`` and ``fc2`` linears for PEFT methods to target. The
decoder lays the tokens out on their (time, receiver) grid, resizes that grid to the
velocity grid and refines it with convolutions; ``head`` is the output convolution and
``tanh`` bounds the normalised velocity to ``[-1, 1]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OptionError
from ..specs import IOShape
from .backbone_options import ViTOptions


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Two-layer feed-forward network with GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer encoder block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.mlp(self.norm2(x)))


def sincos_2d(rows: int, cols: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positional embedding, ``(rows * cols, dim)``.

    Half the channels encode the row (time) index and half the column (receiver) index,
    so the embedding exists for any grid and pretrained weights carry over to new shapes.
    """
    quarter = max(dim // 4, 1)
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    r, c = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64),
                          indexing="ij")
    r = r.reshape(-1, 1) * omega
    c = c.reshape(-1, 1) * omega
    emb = torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)
    if emb.shape[1] < dim:  # dim not a multiple of 4
        emb = F.pad(emb, (0, dim - emb.shape[1]))
    return emb[:, :dim].float()


#: Stop-band attenuation the anti-aliasing filter is designed for, in dB: Kaiser's formulas turn
#: it and the transition band into the filter's length and window.
ALIAS_ATTENUATION_DB = 60.0
#: Cutoff (half amplitude) as a fraction of the decimated Nyquist frequency. The transition band
#: is centred on it and ends at the decimated Nyquist frequency, where aliasing would begin.
ALIAS_CUTOFF = 0.8


def antialias_taps(factor: int) -> torch.Tensor:
    """Low-pass taps for keeping every ``factor``-th sample: a Kaiser-windowed sinc, ``float64``.

    Cutoff at ``ALIAS_CUTOFF / factor`` of the original Nyquist frequency; the transition band
    runs from 0.6 to 1.0 of the decimated Nyquist frequency, so what would alias is attenuated by
    about ``ALIAS_ATTENUATION_DB`` and what lies below 0.6 of it passes within about 0.1 %.
    The length is odd, so the filter's delay is a whole number of samples and, applied
    centred, it keeps the traces aligned in time. The gain at zero frequency is exactly one.
    """
    cutoff = ALIAS_CUTOFF / factor
    width = 2.0 * (1.0 - ALIAS_CUTOFF) / factor
    attenuation = ALIAS_ATTENUATION_DB
    order = math.ceil((attenuation - 7.95) / (2.285 * math.pi * width))
    order += order % 2
    beta = 0.1102 * (attenuation - 8.7)
    n = torch.arange(order + 1, dtype=torch.float64) - order / 2
    window = torch.kaiser_window(order + 1, periodic=False, beta=beta, dtype=torch.float64)
    taps = cutoff * torch.sinc(cutoff * n) * window
    return taps / taps.sum()


class TimeDecimation(nn.Module):
    """Gathers ``(B, S, T, R)`` -> ``(B, S, ceil(T / factor), R)``: low-pass, then every ``factor``-th sample.

    The low-pass runs along time (:func:`antialias_taps`); the first sample is kept. The taps
    are a non-persistent buffer: not trained, not saved, so weights saved without them load
    strictly.

    Args:
        factor: keep every ``factor``-th time sample (at least 2).
        time: the trace length it is built for; the filter must fit inside it.
    """

    taps: torch.Tensor

    def __init__(self, factor: int, time: int) -> None:
        super().__init__()
        taps = antialias_taps(factor)
        self.factor = factor
        self.pad = (taps.numel() - 1) // 2
        if time <= self.pad:
            raise OptionError(f"time_decimation {factor} needs traces longer than {self.pad} samples (half its "
                              f"{taps.numel()}-tap anti-aliasing filter), got {time}; use a smaller time_decimation")
        self.register_buffer("taps", taps.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, t, r = x.shape
        # Receivers as channels, so one depthwise conv1d filters every trace along time.
        traces = x.reshape(b * s, t, r).transpose(1, 2)
        # Reflected, not zero, padding: the normalised gathers' quiet level need not be zero and
        # a trace still carries late reflections at its last sample, so zeros would put a step at
        # either end that the filter smears into ringing over its half-length; reflecting continues
        # the trace without a jump. Symmetric padding by half the odd length keeps the output aligned.
        traces = F.pad(traces, (self.pad, self.pad), mode="reflect")
        # The stride keeps every factor-th output without computing the others.
        out = F.conv1d(traces, self.taps.expand(r, 1, -1), stride=self.factor, groups=r)
        return out.transpose(1, 2).reshape(b, s, -1, r)


class Decoder(nn.Module):
    """Tokens on their (time, receiver) grid -> feature map on the velocity grid."""

    def __init__(self, dim: int, channels: int, depth_width: tuple[int, int]) -> None:
        super().__init__()
        self.out_size = depth_width
        half = max(channels // 2, 1)
        self.embed = nn.Linear(dim, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, half, 3, padding=1)
        self.conv3 = nn.Conv2d(half, half, 3, padding=1)
        self.act = nn.GELU()
        self.out_channels = half

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b = tokens.shape[0]
        z, x = self.out_size
        feat = self.embed(tokens).transpose(1, 2).reshape(b, -1, *grid)
        # Two-way travel time grows with depth, so the time axis of the token grid is
        # stretched onto depth and the receiver axis onto x; attention does the rest.
        feat = F.interpolate(feat, size=(math.ceil(z / 4), math.ceil(x / 4)), mode="bilinear", align_corners=False)
        feat = self.act(self.conv1(feat))
        feat = F.interpolate(feat, size=(math.ceil(z / 2), math.ceil(x / 2)), mode="bilinear", align_corners=False)
        feat = self.act(self.conv2(feat))
        feat = F.interpolate(feat, size=(z, x), mode="bilinear", align_corners=False)
        return self.act(self.conv3(feat))


class ViT(nn.Module):
    """Vision Transformer mapping gathers ``(B, S, T, R)`` to velocity ``(B, 1, Z, X)`` in [-1, 1].

    Args:
        options: the backbone's options.
        shape: the gather and velocity sizes it is built for.
    """

    def __init__(self, options: ViTOptions, shape: IOShape) -> None:
        super().__init__()
        dim, depth, heads = options.resolved()
        self.shape = shape
        factor = options.time_decimation
        self.decimate = TimeDecimation(factor, shape.time) if factor > 1 else None
        time = math.ceil(shape.time / factor)  # the length the patches are cut from
        self.patch = (min(options.patch_time, time), min(options.patch_receiver, shape.receivers))
        self.grid = (math.ceil(time / self.patch[0]), math.ceil(shape.receivers / self.patch[1]))
        n_tokens = self.grid[0] * self.grid[1]
        self.patch_embed = nn.Linear(shape.shots * self.patch[0] * self.patch[1], dim)
        if options.pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        else:
            # Not persistent: recomputed at any shape, so it never blocks loading weights.
            self.register_buffer("pos_embed", sincos_2d(*self.grid, dim)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(dim, heads, options.mlp_ratio, options.dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.decoder = Decoder(dim, options.decoder_dim, (shape.depth, shape.width))
        self.head = nn.Conv2d(self.decoder.out_channels, 1, 3, padding=1)
        self.apply(_init)

    #: Where the ``adapter`` PEFT method inserts its bottlenecks: after every encoder block.
    adapter_targets = (r"blocks\.\d+",)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, S, T, R)`` -> ``(B, tokens, S * patch_time * patch_receiver)``; pads with zeros.

        ``T`` is the decimated trace length when ``time_decimation`` is above one.
        """
        b, s, t, r = x.shape
        pt, pr = self.patch
        nt, nr = self.grid
        if (t, r) != (nt * pt, nr * pr):
            x = F.pad(x, (0, nr * pr - r, 0, nt * pt - t))
        x = x.reshape(b, s, nt, pt, nr, pr).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, nt * nr, s * pt * pr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, t, r = self.shape.shots, self.shape.time, self.shape.receivers
        if x.dim() != 4 or tuple(x.shape[1:]) != (s, t, r):
            raise ValueError(f"vit built for gathers (B, {s}, {t}, {r}), got {tuple(x.shape)}")
        if self.decimate is not None:
            x = self.decimate(x)
        tokens = self.patch_embed(self.patchify(x)) + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        feat = self.decoder(self.norm(tokens), self.grid)
        return torch.tanh(self.head(feat))


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build(options: ViTOptions | None = None, *, shape: IOShape | None = None) -> ViT:
    """Build the ``vit`` backbone (factory of the ``vit`` spec)."""
    return ViT(options or ViTOptions(), shape or IOShape())
