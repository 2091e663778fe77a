"""Options of the ``deepwave`` physics (kept free of heavy imports: the registry reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from fwi_plugins.physics_options import WaveletPhysicsOptions


@dataclass(frozen=True, kw_only=True)
class DeepwaveOptions(WaveletPhysicsOptions):
    """How the ``deepwave`` physics simulates and compares data (the grid options, then the wavelet's)."""
