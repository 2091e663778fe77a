"""The contract physics plugins implement, and the helpers any of them can use.

A physics plugin's factory is called as ``factory(options, *, survey)`` and returns an
object satisfying :class:`Physics`. A physics offers the registered misfits (the built-in
ones live in :mod:`fwi_plugins.misfit_functions`) by name through :func:`get_misfit`. torch
is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .errors import DataError, SurveyError
from .survey import Survey

if TYPE_CHECKING:
    import torch

    from .physics_options import WaveletPhysicsOptions

__all__ = [
    "Physics",
    "check_survey_positions",
    "check_velocity_input",
    "get_misfit",
    "options_misfit",
]


@runtime_checkable
class Physics(Protocol):
    """A differentiable forward model bound to one survey.

    Attributes:
        survey: the acquisition geometry and wavelet it simulates.
        version: a string that changes whenever the same velocity would simulate to
            different gathers (solver version, accuracy, boundary...); part of the
            simulation cache key.
    """

    survey: Survey
    version: str

    def simulate(self, velocity: torch.Tensor) -> torch.Tensor:
        """Gathers ``(B, S, T, R)`` for velocity ``(B, 1, Z, X)`` in m/s, differentiable, on its device."""
        ...

    def misfit(self, predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """A scalar, differentiable data misfit; zero when the two are identical."""
        ...


def check_velocity_input(velocity: torch.Tensor, *, survey: Survey, accuracy: int, max_vel: float,
                         check: bool = True) -> torch.Tensor:
    """The checks every grid-based physics makes on the models it is asked to simulate.

    Args:
        velocity: ``(B, 1, Z, X)`` in m/s.
        survey: the acquisition the models must fit.
        accuracy: finite-difference order, for the points-per-wavelength check.
        max_vel: the velocity the time step was chosen for; a faster model is an error.
        check: run the survey's full checks (range, NaN, points per wavelength, ``max_vel``);
            without them only the grid size is compared.

    Returns:
        ``velocity``, as float32 unless it is float32 or float64 already.

    Raises:
        DataError: not a tensor of shape ``(B, 1, Z, X)``.
        SurveyError: the model does not fit the survey or is faster than ``max_vel``.
    """
    import torch

    if not isinstance(velocity, torch.Tensor):
        raise DataError(f"simulate: velocity must be a torch.Tensor, got {type(velocity).__name__}")
    if velocity.ndim != 4 or velocity.shape[1] != 1:
        raise DataError(f"simulate: velocity must have shape (batch, 1, depth, x), got {tuple(velocity.shape)}")
    if check:
        survey.check_velocity(velocity, accuracy=accuracy)
        fastest = float(velocity.detach().max())
        if fastest > max_vel * (1 + 1e-6):
            raise SurveyError(f"velocity reaches {fastest:g} m/s, above the physics' max_vel "
                              f"{max_vel:g} m/s: the model would be clamped and the gathers simulated "
                              f"for a different model; raise -o physics.max_vel to at least {fastest:g} "
                              f"(or leave it unset: the survey's vmax {survey.vmax:g} m/s)")
    elif velocity.shape[-2:] != (survey.nz, survey.nx):
        raise SurveyError(f"velocity has grid {tuple(velocity.shape[-2:])}, the survey expects "
                          f"({survey.nz}, {survey.nx})")
    if velocity.dtype not in (torch.float32, torch.float64):
        velocity = velocity.float()
    return velocity


def check_survey_positions(survey: Survey, *, physics: str, halfwidth: int) -> None:
    """Fail before simulating if a source or receiver lies where ``physics`` cannot place it.

    A position on a whole cell is always placed. A fractional one is spread over the
    ``halfwidth`` cells on each side of it (deepwave's Hicks windows), which must all lie
    on the grid: in a dimension of ``n`` cells, a fractional coordinate must be at least
    ``halfwidth - 1`` and below ``n - halfwidth``. A ``halfwidth`` of 0 places whole cells only.

    Args:
        survey: the acquisition to check.
        physics: the physics' name, for messages.
        halfwidth: cells on each side a fractional position is spread over; 0 for none.

    Raises:
        SurveyError: naming the survey field, the position, and where it may be put instead.
    """
    import math

    for label in ("sources", "receivers"):
        for i, point in enumerate(getattr(survey, label)):
            for name, coordinate, size in zip("zx", point, (survey.nz, survey.nx)):
                if float(coordinate).is_integer():
                    continue
                where = f"survey field {label!r}[{i}] = ({point[0]:g}, {point[1]:g})"
                cells = f"{name} = {math.floor(coordinate)} or {math.ceil(coordinate)}"
                if halfwidth <= 0:
                    raise SurveyError(f"{where}: {name} = {coordinate:g} is not a whole cell, and {physics} places "
                                      f"sources and receivers on whole cells only; put it at {cells} (or use a "
                                      f"physics that interpolates, such as deepwave)")
                low, high = halfwidth - 1, size - halfwidth
                if not low <= coordinate < high:
                    inside = f"at least {low} and below {high}" if low < high else "nowhere on this grid"
                    raise SurveyError(
                        f"{where}: {name} = {coordinate:g} is not a whole cell, so {physics} spreads it over "
                        f"{halfwidth} cells on each side, past the edge of the {survey.nz} x {survey.nx} grid; a "
                        f"fractional {name} must lie {inside}: put it at {cells}, or widen the grid")


def get_misfit(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A registered misfit function by name (built-in or a plugin's), with a "Did you mean" on a typo.

    See :mod:`fwi_plugins.misfit_registry`; :data:`fwi_plugins.misfit_functions.MISFITS` holds the
    built-in ones only.
    """
    from .misfit_registry import get_misfit as registered

    return registered(name)


def options_misfit(options: WaveletPhysicsOptions, survey: Survey
                   ) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], int | None]:
    """The misfit a grid physics compares data with, as its options say, and the filter's half-length.

    ``options.misfit`` itself for ``wavelet="survey"``; for ``"estimate"``, that misfit after
    the matching filter of :func:`fwi_plugins.wavelet.matched_misfit`, whose half-length is
    ``options.wavelet_lag`` seconds (default :func:`~fwi_plugins.wavelet.default_max_lag`)
    in samples, at most the traces' length less one.

    Returns:
        ``(misfit, max_lag)``: ``max_lag`` in samples, ``None`` for ``wavelet="survey"``.
    """
    from .wavelet import default_max_lag, matched_misfit

    misfit = get_misfit(options.misfit)
    if options.wavelet != "estimate":
        return misfit, None
    lag = default_max_lag(survey.peak_freq) if options.wavelet_lag is None else options.wavelet_lag
    max_lag = min(int(round(lag / survey.dt)), survey.nt - 1)
    return matched_misfit(misfit, max_lag=max_lag, damping=options.wavelet_damping), max_lag
