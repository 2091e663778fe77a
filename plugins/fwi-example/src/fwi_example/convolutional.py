"""The ``convolutional`` physics: a 1D normal-incidence convolutional forward model.

The textbook model of a stacked zero-offset section. Beneath each receiver, the
velocity column ``v(z)`` (constant density) gives

* reflection coefficients at cell boundaries, ``r_k = (v[k] - v[k-1]) / (v[k] + v[k-1])``,
* their two-way times from the top of the model, ``t_k = 2 * sum_{j<k} dx / v[j]``
  (depth-to-time conversion with the interval velocities),

and the trace is the reflectivity series ``sum_k r_k * delta(t - t_k)`` convolved with
the survey's wavelet. Every shot records the same zero-offset traces: there is no
offset, no direct wave, no multiples and no transmission loss. It is cheap (no time
stepping) and differentiable in both the amplitudes and the arrival times, which makes
it a useful stand-in where a wave-equation solver is too slow, and a clear example of
the Physics contract (:class:`fwi_plugins.physics.Physics`).

Source and receiver depths in the survey are not used: traces start at the top of the
model.
"""

from __future__ import annotations

import torch

from fwi_plugins import Survey
from fwi_plugins.physics import get_misfit

from .options import ConvolutionalOptions


class ConvolutionalPhysics:
    """Zero-offset convolutional modelling on a survey's grid and time axis.

    Args:
        survey: grid spacing, time sampling, receivers (their x positions pick the
            velocity columns) and wavelet.
        misfit: name of a registered misfit (``fwi list misfit``): core's ``"l2"``,
            ``"envelope"``, ``"trace-l2"``, ``"ncc"``, or a plugin's.

    Attributes:
        version: changes whenever the simulated data would; part of simulation cache keys.
    """

    name = "convolutional"
    version = "1"

    def __init__(self, survey: Survey, *, misfit: str = "l2") -> None:
        self.survey = survey
        self.misfit_name = misfit
        self._misfit = get_misfit(misfit)
        self._wavelet = torch.from_numpy(survey.wavelet_samples())
        rec_x = torch.tensor([r[1] for r in survey.receivers], dtype=torch.float64)
        # Receivers between grid columns read a linear blend of their two neighbours.
        self._left = rec_x.floor().long().clamp(max=survey.nx - 1)
        self._right = (self._left + 1).clamp(max=survey.nx - 1)
        self._blend = (rec_x - self._left).float()

    def simulate(self, velocity: torch.Tensor) -> torch.Tensor:
        """Simulate gathers.

        Args:
            velocity: ``(B, 1, Z, X)`` in m/s on the survey's grid.

        Returns:
            ``(B, S, T, R)`` gathers on ``velocity``'s device and dtype, differentiable
            with respect to ``velocity``.
        """
        s = self.survey
        if velocity.ndim != 4 or tuple(velocity.shape[1:]) != (1, s.nz, s.nx):
            raise ValueError(f"convolutional: velocity must be (batch, 1, {s.nz}, {s.nx}) on the survey's grid, "
                             f"got {tuple(velocity.shape)}")
        if not torch.all(velocity > 0):
            raise ValueError("convolutional: velocity must be positive everywhere (m/s)")
        device, dtype = velocity.device, velocity.dtype
        blend = self._blend.to(device, dtype)
        columns = velocity[:, 0]  # (B, Z, X)
        v = (columns[..., self._left.to(device)] * (1 - blend)
             + columns[..., self._right.to(device)] * blend)  # (B, Z, R)
        v = v.transpose(1, 2)  # (B, R, Z)

        reflectivity = (v[..., 1:] - v[..., :-1]) / (v[..., 1:] + v[..., :-1])  # (B, R, Z-1)
        two_way = 2.0 * torch.cumsum(s.dx / v, dim=-1)[..., :-1]  # time to the top of cells 1..Z-1
        spikes = self._spike_train(reflectivity, two_way / s.dt, s.nt)  # (B, R, T)

        # Linear (not circular) convolution: pad to twice the length before the FFT.
        n = 2 * s.nt
        wavelet = self._wavelet.to(device, dtype)
        traces = torch.fft.irfft(torch.fft.rfft(spikes, n=n) * torch.fft.rfft(wavelet, n=n), n=n)[..., : s.nt]
        gathers = traces.transpose(1, 2)  # (B, T, R)
        return gathers.unsqueeze(1).expand(-1, s.n_shots, -1, -1).contiguous()

    @staticmethod
    def _spike_train(amplitude: torch.Tensor, position: torch.Tensor, nt: int) -> torch.Tensor:
        """Place ``amplitude`` at fractional sample ``position``, split between the two nearest samples.

        The linear split makes the trace differentiable in the arrival times, which is what
        lets a misfit move interfaces, not only change their contrast.
        """
        below = position.detach().floor()
        frac = position - below  # carries the gradient with respect to the position
        index = below.long()
        out = amplitude.new_zeros(*amplitude.shape[:-1], nt + 2)
        # Arrivals after the last sample are dropped: parked in the two spare slots, cut below.
        index = index.clamp(0, nt)
        out = out.scatter_add(-1, index, amplitude * (1 - frac))
        out = out.scatter_add(-1, index + 1, amplitude * frac)
        return out[..., :nt]

    def misfit(self, predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """The option-chosen data misfit of two ``(B, S, T, R)`` gathers: a differentiable scalar."""
        return self._misfit(predicted, observed)


def build(options: ConvolutionalOptions | None, *, survey: Survey) -> ConvolutionalPhysics:
    """Factory of the ``convolutional`` physics (see :class:`~fwi_plugins.PhysicsSpec`)."""
    options = options or ConvolutionalOptions()
    return ConvolutionalPhysics(survey, misfit=options.misfit)
