"""Source-wavelet estimation: compare simulated and recorded data like with like.

Recorded data carry a source wavelet nobody measured and an amplitude scale set by the
instrument, not by the model. The wave equation is linear in the source, so gathers
recorded with a wavelet ``w`` are the gathers simulated with the survey's Ricker ``r``
convolved with a filter ``f`` that turns ``r`` into ``w``. One such filter per survey (all
shots and receivers of one set of gathers share it) is found by damped least squares::

    min_f  sum_traces || f * simulated - observed ||^2  +  eps || f ||^2

with ``f`` supported on lags ``-max_lag .. max_lag`` (a wavelet, not a trace: one short
filter cannot absorb the offset-dependent traveltime errors of a wrong model). The normal
equations are Toeplitz in the simulated traces' summed autocorrelation; ``eps`` is
``damping`` times its zero lag (prewhitening), which keeps the filter small where the Ricker
has no energy to match. The estimated wavelet is ``f * r``; it carries the amplitude scale.

Used as a misfit (:func:`matched_misfit`, and a physics plugin's ``wavelet=estimate``), the
filter is re-estimated for every comparison from the current simulation and held constant
in the gradient: the misfit of the best filter for the current model (variable
projection), whose gradient is exactly that with the filter fixed.

    from fwi_plugins.wavelet import estimate_wavelet
    est = estimate_wavelet(physics, velocity, observed)
    est.wavelet, est.times, est.fit

torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DataError, OptionError

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_DAMPING", "WaveletEstimate", "apply_filter", "default_max_lag", "estimate_wavelet",
           "matched_misfit", "matching_filter", "phase_rotate", "ricker", "wavelet_figure"]

#: Prewhitening of the normal equations, a fraction of the simulated traces' zero-lag energy.
DEFAULT_DAMPING = 1e-3


def default_max_lag(peak_freq: float) -> float:
    """Half-length in seconds of the matching filter for a survey wavelet of ``peak_freq``.

    Three periods of the survey's Ricker: room for a wavelet of half its frequency, a
    phase rotation and a delay of one period either way.
    """
    return 3.0 / float(peak_freq)


def _check_settings(max_lag: int, n_time: int, damping: float) -> None:
    if max_lag < 0:
        raise OptionError(f"wavelet: max_lag must be >= 0 samples, got {max_lag}")
    if max_lag >= n_time:
        raise OptionError(f"wavelet: the matching filter's half-length ({max_lag} samples) must be shorter "
                          f"than the traces ({n_time} samples)")
    if not (math.isfinite(damping) and damping > 0):
        raise OptionError(f"wavelet: damping must be a positive number, got {damping}")


def _spectra_size(n_time: int, max_lag: int) -> int:
    # Zero padding to n_time + max_lag keeps circular correlation and convolution exact for
    # lags up to max_lag (no late samples wrapped onto early ones).
    n = n_time + max_lag + 1
    return n + (n % 2)


def matching_filter(simulated: Any, observed: Any, *, max_lag: int, damping: float = DEFAULT_DAMPING,
                    time_dim: int = -2) -> torch.Tensor:
    """The damped least-squares filter that turns ``simulated`` into ``observed``, per sample.

    Args:
        simulated: gathers ``(B, ..., T, ...)``, time along ``time_dim``; every other
            dimension but the first is summed over (all traces of a sample share the filter).
        observed: recorded gathers of the same shape.
        max_lag: half-length in samples; the filter has ``2 * max_lag + 1`` taps, lags
            ``-max_lag .. max_lag`` (index ``max_lag`` is lag 0).
        damping: prewhitening, a fraction of the simulated traces' zero-lag energy.
        time_dim: the time dimension.

    Returns:
        Filters ``(B, 2 * max_lag + 1)``, float64, detached (no gradient flows through).

    Raises:
        DataError: shapes that differ, or a sample whose simulation is silent.
        OptionError: a filter as long as the traces, or a non-positive damping.
    """
    import torch

    sim = torch.as_tensor(simulated).detach()
    obs = torch.as_tensor(observed).detach().to(device=sim.device)
    if tuple(sim.shape) != tuple(obs.shape):
        raise DataError(f"wavelet: simulated gathers have shape {tuple(sim.shape)} but observed gathers have "
                        f"shape {tuple(obs.shape)}")
    if sim.ndim < 2:
        raise DataError(f"wavelet: gathers need a sample and a time dimension, got shape {tuple(sim.shape)}")
    n_time = sim.shape[time_dim]
    _check_settings(max_lag, n_time, damping)
    sim = sim.movedim(time_dim, -1).reshape(sim.shape[0], -1, n_time).double()
    obs = obs.movedim(time_dim, -1).reshape(obs.shape[0], -1, n_time).double()
    if not (torch.isfinite(sim).all() and torch.isfinite(obs).all()):
        raise DataError("wavelet: the gathers hold NaN or infinite values")
    n_fft = _spectra_size(n_time, max_lag)
    s = torch.fft.rfft(sim, n=n_fft)
    o = torch.fft.rfft(obs, n=n_fft)
    auto = torch.fft.irfft((s.conj() * s).sum(dim=1), n=n_fft)      # (B, n_fft), lag j at index j mod n
    cross = torch.fft.irfft((s.conj() * o).sum(dim=1), n=n_fft)     # sum_t o(t) s(t - j)
    lags = torch.arange(-max_lag, max_lag + 1, device=sim.device)
    # Toeplitz normal matrix R[j, k] = auto(j - k); autocorrelation is symmetric.
    matrix = auto[:, (lags.view(-1, 1) - lags.view(1, -1)).abs()]
    rhs = cross[:, lags % n_fft]
    energy = auto[:, 0]
    if bool((energy <= 0).any()):
        raise DataError("wavelet: a simulated sample is silent everywhere; no wavelet can be matched to it")
    eye = torch.eye(len(lags), dtype=matrix.dtype, device=matrix.device)
    matrix = matrix + (damping * energy).view(-1, 1, 1) * eye
    return torch.linalg.solve(matrix, rhs.unsqueeze(-1)).squeeze(-1)


def apply_filter(data: torch.Tensor, filters: torch.Tensor, *, time_dim: int = -2) -> torch.Tensor:
    """Convolve every trace of each sample with that sample's filter; differentiable in ``data``.

    Args:
        data: gathers ``(B, ..., T, ...)``, time along ``time_dim``.
        filters: ``(B, 2 * m + 1)`` taps on lags ``-m .. m`` (as :func:`matching_filter` gives),
            or ``(2 * m + 1,)`` for all samples.

    Returns:
        The filtered gathers, same shape and dtype as ``data``, the first ``T`` samples of
        the convolution (lag 0 keeps times).
    """
    import torch

    n_time = data.shape[time_dim]
    taps = filters if filters.ndim == 2 else filters.unsqueeze(0).expand(data.shape[0], -1)
    if taps.shape[-1] % 2 != 1:
        raise DataError(f"wavelet: a filter needs an odd number of taps (lags -m..m), got {taps.shape[-1]}")
    if taps.shape[0] != data.shape[0]:
        raise DataError(f"wavelet: {taps.shape[0]} filter(s) for {data.shape[0]} sample(s)")
    max_lag = taps.shape[-1] // 2
    if max_lag >= n_time:
        raise OptionError(f"wavelet: the filter's half-length ({max_lag} samples) must be shorter than the "
                          f"traces ({n_time} samples)")
    n_fft = _spectra_size(n_time, max_lag)
    kernel = torch.zeros(taps.shape[0], n_fft, dtype=data.dtype, device=data.device)
    lags = torch.arange(-max_lag, max_lag + 1, device=data.device) % n_fft
    kernel[:, lags] = taps.to(device=data.device, dtype=data.dtype)
    moved = data.movedim(time_dim, -1)
    shape = [taps.shape[0]] + [1] * (moved.ndim - 2) + [-1]
    spectrum = torch.fft.rfft(moved, n=n_fft) * torch.fft.rfft(kernel, n=n_fft).view(shape)
    return torch.fft.irfft(spectrum, n=n_fft)[..., :n_time].movedim(-1, time_dim)


def matched_misfit(misfit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, max_lag: int,
                   damping: float = DEFAULT_DAMPING) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``misfit`` after the best matching filter for the current simulation (variable projection).

    Args:
        misfit: a data misfit ``misfit(predicted, observed)`` on ``(B, S, T, R)`` gathers.
        max_lag: the filter's half-length in samples.
        damping: prewhitening (see :func:`matching_filter`).

    Returns:
        A misfit of the same signature that compares ``f * predicted`` with ``observed``,
        ``f`` estimated per sample from the two and held constant in the gradient.
    """

    def compare(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        filters = matching_filter(predicted, observed, max_lag=max_lag, damping=damping)
        return misfit(apply_filter(predicted, filters), observed)

    compare.__name__ = f"matched_{getattr(misfit, '__name__', 'misfit')}"
    compare.__doc__ = f"{misfit.__doc__ or ''}\n\nAfter a matching filter estimated per sample (source wavelet)."
    return compare


@dataclass
class WaveletEstimate:
    """What :func:`estimate_wavelet` returns (numpy arrays, one row per sample).

    Attributes:
        wavelet: the estimated source wavelet on the survey's time axis ``(B, T)``: the
            survey's wavelet through the matching filter, in the recorded data's units.
        times: the time axis in seconds ``(T,)``.
        filter: the matching filter ``(B, 2 m + 1)`` on lags ``-m .. m``.
        lags: the filter's lags in seconds ``(2 m + 1,)``.
        fit: per sample, the fraction of the observed energy the filtered simulation explains,
            ``1 - |f * sim - obs|^2 / |obs|^2`` (1: perfect, 0: none).
        fit_unfiltered: the same for the simulation as it is, with the survey's wavelet
            (negative when it is further from the data than silence).
    """

    wavelet: np.ndarray
    times: np.ndarray
    filter: np.ndarray
    lags: np.ndarray
    fit: np.ndarray
    fit_unfiltered: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the wavelet per sample with its time axis, and the fits."""
        return {"times_s": self.times.tolist(), "wavelet": self.wavelet.tolist(),
                "fit": self.fit.tolist(), "fit_unfiltered": self.fit_unfiltered.tolist()}


def _fit(predicted: torch.Tensor, observed: torch.Tensor) -> np.ndarray:
    dims = tuple(range(1, observed.ndim))
    residual = (predicted - observed).square().sum(dim=dims)
    energy = observed.square().sum(dim=dims).clamp_min(1e-300)
    return (1.0 - residual / energy).cpu().numpy()


def estimate_wavelet(physics: Any, velocity: Any, observed: Any, *, max_lag: float | None = None,
                     damping: float = DEFAULT_DAMPING) -> WaveletEstimate:
    """Estimate the source wavelet of ``observed`` in the model ``velocity``.

    Args:
        physics: a built physics (its survey gives the time axis and the assumed wavelet).
        velocity: ``(B, 1, Z, X)`` m/s (or ``(Z, X)``), the current model, for example a
            network's prediction; the better it explains the kinematics, the cleaner the estimate.
        observed: recorded gathers ``(B, S, T, R)`` (or ``(S, T, R)``) of the physics' survey.
        max_lag: the filter's half-length in seconds; default three periods of the survey's
            wavelet (:func:`default_max_lag`).
        damping: prewhitening (see :func:`matching_filter`).

    Returns:
        A :class:`WaveletEstimate`.
    """
    import torch

    survey = physics.survey
    v = torch.as_tensor(np.asarray(velocity, dtype=np.float32))
    while v.ndim < 4:
        v = v.unsqueeze(0)
    obs = torch.as_tensor(np.asarray(observed, dtype=np.float32))
    if obs.ndim == 3:
        obs = obs.unsqueeze(0)
    lag_s = default_max_lag(survey.peak_freq) if max_lag is None else float(max_lag)
    if not (math.isfinite(lag_s) and lag_s >= 0):
        raise OptionError(f"wavelet: max_lag must be a non-negative number of seconds, got {max_lag}")
    m = min(int(round(lag_s / survey.dt)), survey.nt - 1)
    with torch.no_grad():
        simulated = physics.simulate(v).double()
        if tuple(simulated.shape) != tuple(obs.shape):
            raise DataError(f"wavelet: observed gathers have shape {tuple(obs.shape)}, the physics simulates "
                            f"{tuple(simulated.shape)}")
        obs = obs.to(device=simulated.device, dtype=simulated.dtype)
        filters = matching_filter(simulated, obs, max_lag=m, damping=damping)
        matched = apply_filter(simulated, filters)
        source = torch.as_tensor(survey.wavelet_samples(), dtype=filters.dtype, device=filters.device)
        wavelet = apply_filter(source.view(1, -1, 1).expand(len(filters), -1, 1), filters)[..., 0]
    return WaveletEstimate(wavelet=wavelet.cpu().numpy(), times=survey.times(), filter=filters.cpu().numpy(),
                           lags=np.arange(-m, m + 1) * survey.dt, fit=_fit(matched, obs),
                           fit_unfiltered=_fit(simulated, obs))


# -- reference wavelets --------------------------------------------------------------------
def ricker(times: Any, peak_freq: float, delay: float) -> np.ndarray:
    """A Ricker wavelet of ``peak_freq`` Hz peaking at ``delay`` s, sampled at ``times``."""
    a = (np.pi * peak_freq * (np.asarray(times, dtype=np.float64) - delay)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


def phase_rotate(signal: Any, degrees: float) -> np.ndarray:
    """``signal`` with every frequency's phase turned by ``degrees`` (constant-phase rotation).

    ``cos(phi) s + sin(phi) H[s]`` with ``H`` the Hilbert transform; 90 degrees turns a
    zero-phase Ricker into its antisymmetric quadrature. The signal should taper to zero
    at both ends (the rotation is periodic).
    """
    s = np.asarray(signal, dtype=np.float64)
    n = s.shape[-1]
    spectrum = np.fft.rfft(s, n=2 * n)
    spectrum[..., 1:] *= np.exp(-1j * np.deg2rad(degrees))
    return np.fft.irfft(spectrum, n=2 * n)[..., :n]


def wavelet_figure(path: Any, estimate: WaveletEstimate, *, assumed: Any = None, title: str = "source wavelet",
                   sample: int = 0) -> Any:
    """PNG of one sample's estimated wavelet beside the survey's (each scaled to its peak) and spectra.

    Args:
        path: the PNG to write (atomically).
        estimate: what :func:`estimate_wavelet` returned.
        assumed: the survey's wavelet ``(T,)`` on the same time axis, drawn for comparison.
        title: figure title.
        sample: which sample's estimate to draw.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from pathlib import Path

    from matplotlib.figure import Figure

    from .atomic import atomic_path

    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_t, ax_f = fig.subplots(1, 2)
    times, dt = estimate.times, float(estimate.times[1] - estimate.times[0]) if len(estimate.times) > 1 else 1.0
    curves = {"estimated": np.asarray(estimate.wavelet[sample], dtype=np.float64)}
    if assumed is not None:
        curves["survey's (assumed)"] = np.asarray(assumed, dtype=np.float64)
    freqs = np.fft.rfftfreq(len(times), d=dt)
    for label, curve in curves.items():
        peak = float(np.abs(curve).max()) or 1.0
        ax_t.plot(times, curve / peak, label=label)
        spectrum = np.abs(np.fft.rfft(curve))
        ax_f.plot(freqs, spectrum / (float(spectrum.max()) or 1.0), label=label)
    gain = float(np.abs(curves["estimated"]).max())
    ax_t.set_title(f"time (estimated peak {gain:.3g}; fit {float(estimate.fit[sample]):.3f})", fontsize=9)
    ax_t.set_xlabel("time (s)")
    ax_t.set_ylabel("amplitude / peak")
    ax_f.set_title("amplitude spectrum", fontsize=9)
    ax_f.set_xlabel("frequency (Hz)")
    ax_f.set_xlim(0, min(float(freqs[-1]), 80.0))
    for ax in (ax_t, ax_f):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
