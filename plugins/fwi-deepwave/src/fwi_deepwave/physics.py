"""The Deepwave forward model: batched, chunked, differentiable acoustic simulation.

Deepwave solves the 2D constant-density acoustic (scalar) wave equation. With its
source convention (the amplitude added to a cell each step is scaled by ``-v^2 dt^2``),
a source wavelet ``w(t)`` in one cell of size ``dx^2`` records, in a homogeneous medium
of speed ``c`` at distance ``r``, the pressure ``dx^2 * w * g`` where ``g`` is the
causal 2D Green's function ``H(t - r/c) / (2 pi sqrt(t^2 - r^2/c^2))`` (in frequency,
``(i/4) H0^(2)(w r / c)``). The plugin's tests hold the simulation to that answer.
"""

from __future__ import annotations

from typing import Any

import deepwave
import numpy as np
import torch

from fwi_plugins.physics import check_survey_positions, check_velocity_input, options_misfit
from fwi_plugins.survey import Survey

from . import __version__
from .options import DeepwaveOptions


# Deepwave's default Hicks window: a fractional position is spread over this many cells each side.
_HALFWIDTH = 4


def _locations(points: tuple[tuple[float, float], ...]) -> torch.Tensor:
    """Grid positions as deepwave wants them: integer cells, or floats for off-cell points."""
    array = np.asarray(points, dtype=np.float64)
    if np.all(array == np.round(array)):
        return torch.from_numpy(array.astype(np.int64))
    # Fractional positions are spread over neighbouring cells by deepwave (Hicks windows).
    return torch.from_numpy(array)


class DeepwavePhysics:
    """Deepwave's scalar propagator bound to a survey.

    Args:
        options: the plugin's options.
        survey: the acquisition to simulate.

    Attributes:
        survey: the survey.
        options: the options.
        pml_width: absorbing boundary width in cells.
        max_vel: the velocity fixing deepwave's internal time step and PML profile; with
            ``check`` a faster model is refused, without it the model is clamped to it.
        version: cache key part: plugin and deepwave versions plus every setting that
            changes the simulated data.
    """

    def __init__(self, options: DeepwaveOptions, *, survey: Survey) -> None:
        check_survey_positions(survey, physics="deepwave", halfwidth=_HALFWIDTH)
        self.options = options
        self.survey = survey
        self.pml_width, self.max_vel, digest = options.grid(survey)
        self._misfit, self.wavelet_max_lag = options_misfit(options, survey)
        self._wavelet = torch.from_numpy(survey.wavelet_samples())
        self._sources = _locations(survey.sources).unsqueeze(1)  # (S, 1, 2)
        self._receivers = _locations(survey.receivers).unsqueeze(0).expand(survey.n_shots, -1, -1)  # (S, R, 2)
        self._cache: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.version = f"fwi-deepwave {__version__}; deepwave {deepwave.__version__}; {digest}"

    def __repr__(self) -> str:
        return (f"DeepwavePhysics(accuracy={self.options.accuracy}, pml_width={self.pml_width}, "
                f"max_vel={self.max_vel:g}, misfit={self.options.misfit!r}, wavelet={self.options.wavelet!r})")

    def _geometry(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Wavelet and positions on ``device``, built once per device and dtype."""
        key = (device, dtype)
        if key not in self._cache:
            amplitudes = self._wavelet.to(device=device, dtype=dtype).view(1, 1, -1)
            self._cache[key] = (amplitudes, self._sources.to(device), self._receivers.to(device))
        return self._cache[key]

    def _check_input(self, velocity: torch.Tensor) -> torch.Tensor:
        return check_velocity_input(velocity, survey=self.survey, accuracy=self.options.accuracy,
                                    max_vel=self.max_vel, check=self.options.check)

    def simulate(self, velocity: torch.Tensor) -> torch.Tensor:
        """Simulate shot gathers for a batch of velocity models.

        All models and shots go through deepwave together (each model repeated once per
        shot), in chunks of at most ``max_batch`` shot simulations.

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
        n_models, n_shots = velocity.shape[0], self.survey.n_shots
        amplitudes, sources, receivers = self._geometry(velocity.device, velocity.dtype)
        # Clamping keeps every model at or below the fixed max_vel: a faster cell would break
        # the stability of the internal time step deepwave chose from max_vel.
        models = velocity[:, 0].clamp(max=self.max_vel)
        total = n_models * n_shots
        chunk = self.options.max_batch or total
        pieces = []
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            shot = torch.arange(start, stop, device=velocity.device) % n_shots
            model = torch.arange(start, stop, device=velocity.device) // n_shots
            out = deepwave.scalar(
                models[model],
                self.survey.dx,
                self.survey.dt,
                source_amplitudes=amplitudes.expand(stop - start, -1, -1),
                source_locations=sources[shot],
                receiver_locations=receivers[shot],
                accuracy=self.options.accuracy,
                pml_width=self.pml_width,
                pml_freq=self.survey.peak_freq,
                max_vel=self.max_vel,
                location_interpolation_halfwidth=_HALFWIDTH,
            )
            pieces.append(out.receiver_amplitudes)
        data = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        # deepwave returns [shot, receiver, time]; the project's layout is (B, S, T, R).
        return data.view(n_models, n_shots, self.survey.n_receivers, self.survey.nt).transpose(2, 3).contiguous()

    def misfit(self, predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """The option-chosen data misfit (see :mod:`fwi_plugins.physics`); a differentiable scalar.

        With ``wavelet=estimate`` the simulation first goes through the matching filter that
        best turns it into ``observed`` (one per set of gathers, see :mod:`fwi_plugins.wavelet`).
        """
        return self._misfit(predicted, observed.to(device=predicted.device, dtype=predicted.dtype))


def build(options: DeepwaveOptions | None = None, *, survey: Survey) -> DeepwavePhysics:
    """The ``deepwave`` physics factory."""
    return DeepwavePhysics(options or DeepwaveOptions(), survey=survey)
