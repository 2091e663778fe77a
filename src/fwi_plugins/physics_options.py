"""Options shared by physics that solve the wave equation on the survey's grid.

Kept free of heavy imports (the registry reads options without importing torch). A grid
physics plugin subclasses :class:`GridPhysicsOptions` (or :class:`WaveletPhysicsOptions`, which
adds the source-wavelet choice) and adds its own fields after these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import SurveyError
from .misfit_registry import canonical_misfit
from .options import option

if TYPE_CHECKING:
    from .survey import Survey

__all__ = ["GridPhysicsOptions", "WaveletPhysicsOptions"]


@dataclass(frozen=True, kw_only=True)
class GridPhysicsOptions:
    """Accuracy, boundary, time-step velocity, misfit, batching and checks of a grid physics."""

    accuracy: int = option(4, "finite-difference order in space: 2, 4, 6 or 8")
    pml_width: int | None = option(None, "absorbing boundary width in cells; default: the survey's pml_width")
    max_vel: float | None = option(
        None, "velocity (m/s) fixing the internal time step and PML; default: the survey's vmax. "
              "A faster model is an error (with check; clamped to it without)")
    misfit: str = option(
        "l2", "data misfit, any registered one (fwi list misfit): l2 (mean squared error), trace-l2 (each "
              "trace scaled to unit energy), ncc (1 - normalised zero-lag cross-correlation per trace), "
              "envelope (L2 of Hilbert envelopes), or a plugin's")
    max_batch: int = option(0, "most shot simulations propagated together, to bound memory (0: all at once)")
    check: bool = option(True, "check every input against the survey (range, NaN, points per wavelength) "
                               "before simulating")

    def __post_init__(self) -> None:
        if self.accuracy not in (2, 4, 6, 8):
            raise ValueError(f"accuracy must be 2, 4, 6 or 8, got {self.accuracy!r}")
        if self.pml_width is not None and self.pml_width < 0:
            raise ValueError(f"pml_width must be >= 0, got {self.pml_width!r}")
        if self.max_vel is not None and not self.max_vel > 0:
            raise ValueError(f"max_vel must be positive, got {self.max_vel!r}")
        if self.max_batch < 0:
            raise ValueError(f"max_batch must be >= 0, got {self.max_batch!r}")
        # Any registered misfit, a plugin's included; an unknown one says "Did you mean".
        object.__setattr__(self, "misfit", canonical_misfit(self.misfit))

    def grid(self, survey: Survey) -> tuple[int, float, str]:
        """``(pml_width, max_vel, digest)`` on ``survey``: these options' values, else the survey's.

        ``digest`` hashes every grid setting that changes simulated data, for the physics'
        ``version`` (a part of the simulation cache key).

        Raises:
            SurveyError: ``max_vel`` is below the survey's slowest velocity.
        """
        pml_width = survey.pml_width if self.pml_width is None else self.pml_width
        max_vel = float(self.max_vel if self.max_vel is not None else survey.vmax)
        if max_vel < survey.vmin:
            raise SurveyError(f"max_vel {max_vel:g} m/s is below the survey's vmin {survey.vmin:g} m/s")
        settings = f"accuracy={self.accuracy};pml={pml_width};max_vel={max_vel:g};pml_freq={survey.peak_freq:g}"
        return pml_width, max_vel, hashlib.sha1(settings.encode()).hexdigest()[:10]


@dataclass(frozen=True, kw_only=True)
class WaveletPhysicsOptions(GridPhysicsOptions):
    """The grid options, then the source wavelet the misfit compares with.

    See :func:`fwi_plugins.physics.options_misfit`, which both grid physics plugins use.
    """

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
