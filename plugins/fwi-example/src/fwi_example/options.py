"""Option dataclasses of the example components.

Kept apart from the components so the registration module can name them without
importing torch: ``fwi list`` and ``fwi show`` read these, never the networks.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwi_plugins.misfit_registry import canonical_misfit
from fwi_plugins.options import option


@dataclass(frozen=True, kw_only=True)
class TinyUNetOptions:
    """Options of the ``tinyunet`` backbone."""

    base_channels: int = option(8, "channels of the first level; each deeper level doubles them")
    levels: int = option(2, "number of down-sampling steps (1 to 4)")

    def __post_init__(self) -> None:
        if self.base_channels < 1:
            raise ValueError(f"base_channels must be at least 1, got {self.base_channels}")
        if not 1 <= self.levels <= 4:
            raise ValueError(f"levels must be between 1 and 4, got {self.levels}")


@dataclass(frozen=True, kw_only=True)
class FrozenEncoderOptions:
    """Options of the ``frozen-encoder`` PEFT method."""

    prefixes: tuple[str, ...] = option(
        (), "module names to freeze, with everything under them (e.g. encoder,bottleneck); "
            "empty: the first `fraction` of the top-level non-head modules")
    fraction: float = option(
        0.5, "share of the top-level non-head modules, in registration order, counted as the "
             "encoder when `prefixes` is empty (rounded up)")

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")


@dataclass(frozen=True, kw_only=True)
class TinyLayersOptions:
    """Options of the ``tiny-layers`` dataset."""

    size: int = option(32, "grid points in depth and in x (10 m spacing)")
    train: int = option(8, "number of training models")
    val: int = option(2, "number of validation models")
    test: int = option(2, "number of test models")
    seed: int = option(0, "random seed; the same seed gives the same models")
    max_layers: int = option(3, "most layers per model (2 or 3); each model has 2..max_layers")

    def __post_init__(self) -> None:
        # Three layers of at least three cells each, clear of the edges, need 12 cells.
        if self.size < 12:
            raise ValueError(f"size must be at least 12, got {self.size}")
        for name in ("train", "val", "test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.train + self.val + self.test == 0:
            raise ValueError("train, val and test are all 0: the dataset would be empty")
        if self.max_layers not in (2, 3):
            raise ValueError(f"max_layers must be 2 or 3, got {self.max_layers}")


@dataclass(frozen=True, kw_only=True)
class ConvolutionalOptions:
    """Options of the ``convolutional`` physics."""

    # Registered misfits (core's and any plugin's) work on any gathers; offering all of
    # them costs this plugin nothing.
    misfit: str = option(
        "l2", "data misfit, any registered one (fwi list misfit): 'l2' (sample by sample), 'envelope' "
              "(Hilbert envelope: ignores phase, less prone to cycle skipping), 'trace-l2' or 'ncc' "
              "(amplitude-blind), or a plugin's")

    def __post_init__(self) -> None:
        object.__setattr__(self, "misfit", canonical_misfit(self.misfit))
