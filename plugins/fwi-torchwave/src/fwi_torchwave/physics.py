"""The ``torchwave`` physics: Deepwave's scalar scheme in plain torch, bound to a survey.

The numbers it computes are those of :mod:`fwi_torchwave.propagator`; this module adds the
Physics contract around them (input checks, batching of models and shots, chunking, the
misfit option, the cache version), the same way the ``deepwave`` physics does, so that
the two are interchangeable in every command. The plugin's tests hold its gathers to
Deepwave's within 1e-3 relative L2 error (about 1e-5 measured at OpenFWI size).
"""

from __future__ import annotations


import numpy as np
import torch

from fwi_plugins.physics import check_survey_positions, check_velocity_input, options_misfit
from fwi_plugins.survey import Survey

from . import __version__
from .options import TorchwaveOptions
from .propagator import propagate


def _grid_points(points: tuple[tuple[float, float], ...]) -> torch.Tensor:
    """Whole-cell positions as indices (:func:`check_survey_positions` has refused fractional ones)."""
    return torch.from_numpy(np.asarray(points, dtype=np.float64).astype(np.int64))


class TorchwavePhysics:
    """The pure-torch scalar propagator bound to a survey.

    Args:
        options: the plugin's options.
        survey: the acquisition to simulate.

    Attributes:
        survey: the survey.
        options: the options.
        pml_width: absorbing boundary width in cells.
        max_vel: the velocity fixing the internal time step and PML profile; with
            ``check`` a faster model is refused, without it the model is clamped to it.
        version: cache key part: plugin and torch versions plus every setting that
            changes the simulated data.
    """

    def __init__(self, options: TorchwaveOptions, *, survey: Survey) -> None:
        # Deepwave spreads off-grid points over neighbouring cells (Hicks windows); this
        # propagator does not, so it refuses them rather than moving them silently.
        check_survey_positions(survey, physics="torchwave", halfwidth=0)
        self.options = options
        self.survey = survey
        self.pml_width, self.max_vel, digest = options.grid(survey)
        self._misfit, self.wavelet_max_lag = options_misfit(options, survey)
        self._wavelet = torch.from_numpy(survey.wavelet_samples())
        self._sources = _grid_points(survey.sources)  # (S, 2)
        self._receivers = _grid_points(survey.receivers)  # (R, 2)
        self.version = f"fwi-torchwave {__version__}; torch {torch.__version__.split('+')[0]}; {digest}"

    def __repr__(self) -> str:
        return (f"TorchwavePhysics(accuracy={self.options.accuracy}, pml_width={self.pml_width}, "
                f"max_vel={self.max_vel:g}, misfit={self.options.misfit!r}, wavelet={self.options.wavelet!r})")

    def _check_input(self, velocity: torch.Tensor) -> torch.Tensor:
        return check_velocity_input(velocity, survey=self.survey, accuracy=self.options.accuracy,
                                    max_vel=self.max_vel, check=self.options.check)

    def _compile(self, device: torch.device) -> bool:
        mode = self.options.compile
        return mode == "on" or (mode == "auto" and device.type == "cuda")

    def simulate(self, velocity: torch.Tensor) -> torch.Tensor:
        """Simulate shot gathers for a batch of velocity models.

        All models and shots are propagated together (each model repeated once per shot),
        in chunks of at most ``max_batch`` shot simulations.

        Args:
            velocity: ``(B, 1, Z, X)`` in m/s, float32 or float64, on any device.

        Returns:
            Gathers ``(B, S, T, R)`` with velocity's dtype and device, differentiable
            with respect to velocity.

        Raises:
            DataError: the tensor does not have shape ``(B, 1, Z, X)``.
            SurveyError: the model does not fit the survey (with ``check``: range, NaN,
                points per wavelength).
        """
        velocity = self._check_input(velocity)
        device = velocity.device
        n_models, n_shots = velocity.shape[0], self.survey.n_shots
        # Clamping keeps every model at or below the fixed max_vel: a faster cell would
        # break the stability of the internal time step chosen from max_vel.
        models = velocity[:, 0].clamp(max=self.max_vel)
        sources = self._sources.to(device)
        receivers = self._receivers.to(device)
        total = n_models * n_shots
        chunk = self.options.max_batch or total
        pieces = []
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            index = torch.arange(start, stop, device=device)
            pieces.append(propagate(
                models[index // n_shots], spacing=(self.survey.dx, self.survey.dx), dt=self.survey.dt,
                wavelet=self._wavelet, sources=sources[index % n_shots], receivers=receivers,
                accuracy=self.options.accuracy, pml_width=self.pml_width, pml_freq=self.survey.peak_freq,
                max_vel=self.max_vel, compile=self._compile(device)))
        data = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        # The propagator returns [shot, receiver, time]; the project's layout is (B, S, T, R).
        return data.view(n_models, n_shots, self.survey.n_receivers, self.survey.nt).transpose(2, 3).contiguous()

    def misfit(self, predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """The option-chosen data misfit (see :mod:`fwi_plugins.physics`); a differentiable scalar.

        With ``wavelet=estimate`` the simulation first goes through the matching filter that
        best turns it into ``observed`` (one per set of gathers, see :mod:`fwi_plugins.wavelet`).
        """
        return self._misfit(predicted, observed.to(device=predicted.device, dtype=predicted.dtype))


def build(options: TorchwaveOptions | None = None, *, survey: Survey) -> TorchwavePhysics:
    """The ``torchwave`` physics factory."""
    return TorchwavePhysics(options or TorchwaveOptions(), survey=survey)
