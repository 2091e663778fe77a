"""The ``inversionnet`` backbone: OpenFWI's InversionNet encoder-decoder.

At OpenFWI size (5 x 1000 x 70 gathers -> 70 x 70 velocity) the layers, their names
and the parameter count (24.4 M) are those of the OpenFWI reference, so its weights,
converted to safetensors, load by name. Other sizes work too: the last encoder
convolution's kernel is computed from the encoder's output size (the reference hard-codes
8 x 9), and the decoder's 80 x 80 output is centre-cropped to the velocity grid (as the
reference crops 5 cells each side) or, for grids larger than 80, resized to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..specs import IOShape
from .backbone_options import InversionNetOptions

_DECODER_SIZE = 80  # 1 -> 5 -> 10 -> 20 -> 40 -> 80


class ConvBlock(nn.Module):
    """Conv2d, BatchNorm, LeakyReLU (``layers.0``, ``layers.1``, ``layers.2``)."""

    def __init__(self, cin: int, cout: int, kernel_size=3, stride=1, padding=1, slope: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout),
                                    nn.LeakyReLU(slope, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DeconvBlock(nn.Module):
    """ConvTranspose2d, BatchNorm, LeakyReLU."""

    def __init__(self, cin: int, cout: int, kernel_size=2, stride=2, padding=0, slope: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding),
                                    nn.BatchNorm2d(cout), nn.LeakyReLU(slope, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvBlockTanh(nn.Module):
    """Output head: Conv2d, BatchNorm, tanh."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class InversionNet(nn.Module):
    """InversionNet mapping gathers ``(B, S, T, R)`` to velocity ``(B, 1, Z, X)`` in [-1, 1].

    Args:
        options: channel widths and LeakyReLU slope.
        shape: the gather and velocity sizes it is built for.
    """

    #: Where the ``adapter`` PEFT method inserts its bottlenecks: after every conv block.
    adapter_targets = (r"convblock\d+(_\d+)?|deconv\d+_2",)

    def __init__(self, options: InversionNetOptions, shape: IOShape) -> None:
        super().__init__()
        o, a = options, options.negative_slope
        self.shape = shape
        self.convblock1 = ConvBlock(shape.shots, o.dim1, (7, 1), (2, 1), (3, 0), a)
        self.convblock2_1 = ConvBlock(o.dim1, o.dim2, (3, 1), (2, 1), (1, 0), a)
        self.convblock2_2 = ConvBlock(o.dim2, o.dim2, (3, 1), 1, (1, 0), a)
        self.convblock3_1 = ConvBlock(o.dim2, o.dim2, (3, 1), (2, 1), (1, 0), a)
        self.convblock3_2 = ConvBlock(o.dim2, o.dim2, (3, 1), 1, (1, 0), a)
        self.convblock4_1 = ConvBlock(o.dim2, o.dim3, (3, 1), (2, 1), (1, 0), a)
        self.convblock4_2 = ConvBlock(o.dim3, o.dim3, (3, 1), 1, (1, 0), a)
        self.convblock5_1 = ConvBlock(o.dim3, o.dim3, 3, 2, 1, a)
        self.convblock5_2 = ConvBlock(o.dim3, o.dim3, 3, 1, 1, a)
        self.convblock6_1 = ConvBlock(o.dim3, o.dim4, 3, 2, 1, a)
        self.convblock6_2 = ConvBlock(o.dim4, o.dim4, 3, 1, 1, a)
        self.convblock7_1 = ConvBlock(o.dim4, o.dim4, 3, 2, 1, a)
        self.convblock7_2 = ConvBlock(o.dim4, o.dim4, 3, 1, 1, a)
        self.convblock8 = ConvBlock(o.dim4, o.dim5, self.encoder_size(shape), 1, 0, a)

        self.deconv1_1 = DeconvBlock(o.dim5, o.dim5, 5, 1, 0, a)
        self.deconv1_2 = ConvBlock(o.dim5, o.dim5, 3, 1, 1, a)
        self.deconv2_1 = DeconvBlock(o.dim5, o.dim4, 4, 2, 1, a)
        self.deconv2_2 = ConvBlock(o.dim4, o.dim4, 3, 1, 1, a)
        self.deconv3_1 = DeconvBlock(o.dim4, o.dim3, 4, 2, 1, a)
        self.deconv3_2 = ConvBlock(o.dim3, o.dim3, 3, 1, 1, a)
        self.deconv4_1 = DeconvBlock(o.dim3, o.dim2, 4, 2, 1, a)
        self.deconv4_2 = ConvBlock(o.dim2, o.dim2, 3, 1, 1, a)
        self.deconv5_1 = DeconvBlock(o.dim2, o.dim1, 4, 2, 1, a)
        self.deconv5_2 = ConvBlock(o.dim1, o.dim1, 3, 1, 1, a)
        self.deconv6 = ConvBlockTanh(o.dim1, 1)

    @staticmethod
    def encoder_size(shape: IOShape) -> tuple[int, int]:
        """(time, receiver) size of the feature map entering ``convblock8`` (8 x 9 for OpenFWI)."""
        t, r = shape.time, shape.receivers
        t = _conv_out(t, 7, 2, 3)
        for _ in range(3):  # convblock2_1 .. 4_1 halve time only
            t = _conv_out(t, 3, 2, 1)
        for _ in range(3):  # convblock5_1 .. 7_1 halve both
            t, r = _conv_out(t, 3, 2, 1), _conv_out(r, 3, 2, 1)
        return (t, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, t, r = self.shape.shots, self.shape.time, self.shape.receivers
        if x.dim() != 4 or tuple(x.shape[1:]) != (s, t, r):
            raise ValueError(f"inversionnet built for gathers (B, {s}, {t}, {r}), got {tuple(x.shape)}")
        for name in ("convblock1", "convblock2_1", "convblock2_2", "convblock3_1", "convblock3_2",
                     "convblock4_1", "convblock4_2", "convblock5_1", "convblock5_2", "convblock6_1",
                     "convblock6_2", "convblock7_1", "convblock7_2", "convblock8", "deconv1_1", "deconv1_2",
                     "deconv2_1", "deconv2_2", "deconv3_1", "deconv3_2", "deconv4_1", "deconv4_2",
                     "deconv5_1", "deconv5_2"):
            x = getattr(self, name)(x)
        z, w = self.shape.depth, self.shape.width
        if z <= _DECODER_SIZE and w <= _DECODER_SIZE:
            top, left = (_DECODER_SIZE - z) // 2, (_DECODER_SIZE - w) // 2
            x = x[:, :, top:top + z, left:left + w]
        else:
            x = F.interpolate(x, size=(z, w), mode="bilinear", align_corners=False)
        return self.deconv6(x)


def build(options: InversionNetOptions | None = None, *, shape: IOShape | None = None) -> InversionNet:
    """Build the ``inversionnet`` backbone (factory of the ``inversionnet`` spec)."""
    return InversionNet(options or InversionNetOptions(), shape or IOShape())
