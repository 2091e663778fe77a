"""Options of the ``torchwave`` physics (kept free of heavy imports: the registry reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fwi_plugins.options import option
from fwi_plugins.physics_options import WaveletPhysicsOptions


@dataclass(frozen=True, kw_only=True)
class TorchwaveOptions(WaveletPhysicsOptions):
    """How the ``torchwave`` physics simulates and compares data (the grid options, the wavelet's, then compile)."""

    compile: Literal["auto", "on", "off"] = option(
        "auto", "fuse the time step with torch.compile: auto (on CUDA, falling back to plain torch if "
                "compiling fails), on (everywhere), off")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be auto, on or off, got {self.compile!r}")
