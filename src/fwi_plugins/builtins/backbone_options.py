"""Option dataclasses of the built-in backbones.

Kept apart from the networks so that listing components (``fwi show backbone vit``)
never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..options import option

#: Named ViT sizes: embedding width, encoder depth, attention heads.
VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 6, 3),
    "small": (384, 8, 6),
    "base": (768, 12, 12),
}


@dataclass(frozen=True, kw_only=True)
class ViTOptions:
    """Options of the ``vit`` backbone."""

    size: Literal["tiny", "small", "base"] = option(
        "small", "named size: tiny (192 wide, 6 deep), small (384, 8), base (768, 12)")
    patch_time: int = option(50, "time samples per patch (clamped to the trace length)")
    patch_receiver: int = option(7, "receivers per patch (clamped to the receiver count)")
    time_decimation: int = option(
        1, "keep every k-th time sample after an anti-aliasing low-pass (1: off); patches are cut from the "
           "decimated traces")
    dim: int | None = option(None, "embedding width; overrides the size's")
    depth: int | None = option(None, "number of transformer blocks; overrides the size's")
    heads: int | None = option(None, "attention heads; overrides the size's (must divide dim)")
    mlp_ratio: float = option(4.0, "hidden width of each block's MLP, as a multiple of dim")
    pos_embed: Literal["sincos", "learned"] = option(
        "sincos", "positional embedding: fixed 2-D sine-cosine (works at any shape) or learned")
    decoder_dim: int = option(64, "channels of the convolutional decoder")
    dropout: float = option(0.0, "dropout in attention and MLP outputs", architecture=False)

    def __post_init__(self) -> None:
        for name in ("patch_time", "patch_receiver", "time_decimation", "decoder_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("dim", "depth", "heads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        dim, _, heads = self.resolved()
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")

    def resolved(self) -> tuple[int, int, int]:
        """(dim, depth, heads) after applying overrides to the named size."""
        dim, depth, heads = VIT_SIZES[self.size]
        return (self.dim or dim, self.depth or depth, self.heads or heads)


@dataclass(frozen=True, kw_only=True)
class InversionNetOptions:
    """Options of the ``inversionnet`` backbone (OpenFWI widths by default)."""

    dim1: int = option(32, "channels of the first encoder stage and last decoder stage")
    dim2: int = option(64, "channels of the second stage")
    dim3: int = option(128, "channels of the third stage")
    dim4: int = option(256, "channels of the fourth stage")
    dim5: int = option(512, "channels of the bottleneck")
    negative_slope: float = option(0.2, "LeakyReLU slope")

    def __post_init__(self) -> None:
        for name in ("dim1", "dim2", "dim3", "dim4", "dim5"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
