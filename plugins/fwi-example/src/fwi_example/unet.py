"""The ``tinyunet`` backbone: a small U-Net from shot gathers to velocity.

Gathers ``(B, S, T, R)`` live on a time-receiver grid, velocity ``(B, 1, Z, X)`` on a
depth-x grid. The network first resamples the gathers onto the velocity grid (time
stands in for depth, receivers for x, shots become channels), then runs a plain U-Net
there. That crude mapping is what makes it small and shape-agnostic: it works for any
:class:`~fwi_plugins.IOShape`, including odd grid sizes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from fwi_plugins import IOShape

from .options import TinyUNetOptions


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by group normalisation and GELU.

    Group (not batch) normalisation: its behaviour does not depend on the batch size, and
    it has no running statistics that a frozen block would keep updating.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        groups = math.gcd(4, out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.conv1(x)))
        return F.gelu(self.norm2(self.conv2(x)))


class TinyUNet(nn.Module):
    """A U-Net on the velocity grid.

    Top-level modules, in data-flow order: ``encoder`` (one :class:`ConvBlock` per level),
    ``bottleneck``, ``decoder`` (one block per level, deepest first) and ``head`` (a 1x1
    convolution to one channel). The order matters to ``frozen-encoder``, which counts
    these modules to find the encoder.

    Args:
        shape: the sizes the network is built for; only ``shots`` fixes a weight shape,
            other time and receiver counts are resampled like the built ones.
        base_channels: channels of the first level, doubled at each deeper one.
        levels: number of down-sampling steps.
    """

    def __init__(self, shape: IOShape, *, base_channels: int = 8, levels: int = 2) -> None:
        super().__init__()
        self.shape = shape
        channels = [base_channels * 2**i for i in range(levels + 1)]
        self.encoder = nn.ModuleList(
            ConvBlock(shape.shots if i == 0 else channels[i - 1], channels[i]) for i in range(levels))
        self.bottleneck = ConvBlock(channels[levels - 1], channels[levels])
        self.decoder = nn.ModuleList(
            ConvBlock(channels[i + 1] + channels[i], channels[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, gathers: torch.Tensor) -> torch.Tensor:
        """Map normalised gathers ``(B, S, T, R)`` to normalised velocity ``(B, 1, Z, X)`` in [-1, 1]."""
        if gathers.ndim != 4 or gathers.shape[1] != self.shape.shots:
            raise ValueError(f"tinyunet: gathers must be (batch, {self.shape.shots} shots, time, receivers), "
                             f"got {tuple(gathers.shape)}")
        grid = (self.shape.depth, self.shape.width)
        # Antialiasing matters: OpenFWI has 1000 time samples for 70 depth cells, and plain
        # bilinear down-sampling by 14x would keep only a few samples of each wavelet.
        h = F.interpolate(gathers, size=grid, mode="bilinear", align_corners=False, antialias=True)
        skips = []
        for block in self.encoder:
            h = block(h)
            skips.append(h)
            # ceil_mode keeps the last row and column of odd-sized grids.
            h = F.max_pool2d(h, 2, ceil_mode=True)
        h = self.bottleneck(h)
        for block, skip in zip(self.decoder, reversed(skips)):
            # Up-sample to the skip's exact size rather than by 2, so odd sizes line up.
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return torch.tanh(self.head(h))


def build(options: TinyUNetOptions | None, *, shape: IOShape) -> TinyUNet:
    """Factory of the ``tinyunet`` backbone (see :class:`~fwi_plugins.BackboneSpec`)."""
    options = options or TinyUNetOptions()
    return TinyUNet(shape, base_channels=options.base_channels, levels=options.levels)
