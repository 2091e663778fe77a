"""Options of the ``deepwave`` physics (kept free of heavy imports: the registry reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fwi_plugins.options import option
from fwi_plugins.physics_options import GridPhysicsOptions


@dataclass(frozen=True, kw_only=True)
class DeepwaveOptions(GridPhysicsOptions):
    """How the ``deepwave`` physics simulates and compares data (the grid options, then the wavelet's)."""

    wavelet: Literal["survey", "estimate"] = option(
        "survey", "source wavelet the misfit compares with: survey (the survey's Ricker, amplitudes as "
                  "simulated) or estimate (a matching filter per set of gathers, re-estimated at every "
                  "comparison, turns the simulation into the recorded data's wavelet and amplitude scale; "
                  "for field data)")
    wavelet_lag: float | None = option(
        None, "with wavelet=estimate: the matching filter's half-length in seconds; default three periods "
              "of the survey's peak frequency")
    wavelet_damping: float = option(
        1e-3, "with wavelet=estimate: prewhitening of the filter's least-squares fit, a fraction of the "
              "simulated traces' energy")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.wavelet not in ("survey", "estimate"):
            raise ValueError(f"wavelet must be survey or estimate, got {self.wavelet!r}")
        if self.wavelet_lag is not None and not (self.wavelet_lag >= 0 and self.wavelet_lag < float("inf")):
            raise ValueError(f"wavelet_lag must be a non-negative number of seconds, got {self.wavelet_lag!r}")
        if not (self.wavelet_damping > 0 and self.wavelet_damping < float("inf")):
            raise ValueError(f"wavelet_damping must be a positive number, got {self.wavelet_damping!r}")
