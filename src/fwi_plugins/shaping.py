"""Wavelet shaping: gathers of any source wavelet turned into gathers of the wavelet a network was trained on.

A network trained on one source (the shipped foundation: a 15 Hz Ricker) reads gathers of
another wavelet as another earth: a 21.5 Hz Ricker on the same maps halves its SSIM. The
wave equation is linear in the source, so recorded gathers ``d = f * s`` are the gathers
``s`` of the training wavelet convolved with one filter ``f`` per survey (the wavelet's
ratio, its delay and the amplitude scale of the instrument). Shaping undoes ``f`` with a
band-limited (Wiener) inverse::

    S(w) = conj(F(w)) / (|F(w)|^2 + noise * max |F|^2)

which is ``1 / F`` where the data carry energy and falls to zero where they do not, so noise
outside the recorded band is not amplified. ``d`` shaped by ``S`` is ``s`` seen through the
band ``|F|^2 / (|F|^2 + noise max|F|^2)``: the training wavelet, the training amplitude, and
none of the frequencies the data never had.

``f`` comes from one of two places:

* a known source wavelet ``w`` (a file the user gives): ``F = W / R`` (Wiener, with ``R``
  the training wavelet's spectrum), so ``S = R conj(W) / (|W|^2 + noise max|W|^2)``;
* the data alone (:func:`estimate_filter`): the matching filter of :mod:`fwi_plugins.wavelet`
  between gathers simulated in a model with the training wavelet and the recorded gathers,
  pooled over every trace of the survey. The model is the network's own first answer, so
  prediction runs twice (see :func:`fwi_plugins.engine.jobs.prediction.predict_velocity`).

torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataError, OptionError

__all__ = ["DEFAULT_NOISE", "Shaping", "band_of", "estimate_filter", "shape_gathers", "shaping_from_wavelet",
           "shaping_spectrum"]

#: The Wiener inverse's white-noise level, a fraction of the data wavelet's peak power.
DEFAULT_NOISE = 1e-4

#: A data wavelet correlated with the trained one above this, at a scale within MATCH_GAIN, is left as it is.
MATCH_CORRELATION = 0.97
MATCH_GAIN = 1.15


def _n_fft(n_time: int, max_lag: int) -> int:
    n = n_time + 2 * max_lag + 1
    return n + (n % 2)


def _check_noise(noise: float) -> None:
    if not (math.isfinite(noise) and noise > 0):
        raise OptionError(f"shaping: noise must be a positive fraction of the filter's peak power, got {noise}")


def shaping_spectrum(filter_taps: Any, trained: Any, *, n_fft: int, noise: float = DEFAULT_NOISE) -> np.ndarray:
    """The shaping operator ``S = R conj(W) / (|W|^2 + noise max |W|^2)`` with ``W = F R``, as an rfft spectrum.

    ``S`` turns data of wavelet ``W`` into data of the trained wavelet ``R`` where ``W`` has
    energy, and never asks for more than ``R`` holds: shaped data have the spectrum
    ``R |W|^2 / (|W|^2 + noise max |W|^2)``, no frequency amplified beyond the training data's.

    Args:
        filter_taps: ``(2 m + 1,)`` taps of ``F``, index ``m`` is lag 0 (as
            :func:`fwi_plugins.wavelet.matching_filter` gives them).
        trained: the trained wavelet ``R`` sampled from time 0.
        n_fft: the transform length (at least the traces' length plus ``2 m + 1``).
        noise: white-noise level, a fraction of ``max |W|^2``.

    Returns:
        ``S`` of shape ``(n_fft // 2 + 1,)`` complex128.
    """
    _check_noise(noise)
    taps = np.asarray(filter_taps, dtype=np.float64)
    if taps.ndim != 1 or taps.size % 2 != 1:
        raise DataError(f"shaping: a filter needs an odd number of taps on lags -m..m, got shape {taps.shape}")
    m = taps.size // 2
    kernel = np.zeros(n_fft)
    kernel[np.arange(-m, m + 1) % n_fft] = taps
    r = np.fft.rfft(np.asarray(trained, dtype=np.float64), n=n_fft)
    w = np.fft.rfft(kernel) * r
    power = np.abs(w) ** 2
    peak = float(power.max())
    if not peak > 0:
        raise DataError("shaping: the data's wavelet is zero at every frequency; the data hold no signal to shape")
    return r * np.conj(w) / (power + noise * peak)


def _apply_spectrum(gathers: Any, spectrum: np.ndarray, n_fft: int, *, time_dim: int) -> np.ndarray:
    g = np.asarray(gathers, dtype=np.float64)
    moved = np.moveaxis(g, time_dim, -1)
    n_time = moved.shape[-1]
    out = np.fft.irfft(np.fft.rfft(moved, n=n_fft) * spectrum, n=n_fft)[..., :n_time]
    return np.moveaxis(out, -1, time_dim).astype(np.float32)


@dataclass
class Shaping:
    """A shaping operator for one survey: the filter it inverts and how well it was found.

    Attributes:
        filter: ``(2 m + 1,)`` the filter ``f`` from training-wavelet gathers to the data, lags ``-m .. m``.
        trained: the trained wavelet sampled from time 0 on the network's time axis.
        dt: sample interval in seconds (the network's time axis).
        noise: the Wiener inverse's white-noise level.
        source: how ``f`` was found (``"estimated"``, ``"wavelet file"``).
        fit: the share of the data's energy that ``f`` applied to the simulation explains (estimated only).
    """

    filter: np.ndarray
    trained: np.ndarray
    dt: float
    noise: float = DEFAULT_NOISE
    source: str = "estimated"
    fit: float | None = None

    @property
    def wavelet(self) -> np.ndarray:
        """The data's wavelet ``f * r`` from lag ``-m`` on (``m`` the filter's half-length)."""
        return np.convolve(np.asarray(self.trained, dtype=np.float64), self.filter)

    @property
    def gain(self) -> float:
        """Peak amplitude spectrum of the data's wavelet over the trained one's: the data's scale."""
        n = 4 * max(self.wavelet.size, 256)
        return float(np.abs(np.fft.rfft(self.wavelet, n=n)).max() / np.abs(np.fft.rfft(self.trained, n=n)).max())

    def similarity(self) -> tuple[float, float]:
        """``(correlation, gain)`` of the data's wavelet against the trained one at their common time origin."""
        m = self.filter.size // 2
        r = np.asarray(self.trained, dtype=np.float64)
        w = self.wavelet[m:m + r.size]
        norm_r, norm_w = float(np.linalg.norm(r)), float(np.linalg.norm(w))
        if norm_r == 0 or norm_w == 0:
            return 0.0, 0.0
        return float(w @ r) / (norm_r * norm_w), norm_w / norm_r

    def matches_trained(self, *, correlation: float = MATCH_CORRELATION, gain: float = MATCH_GAIN) -> bool:
        """Whether the data's wavelet is the trained one already: correlated above ``correlation``,
        scaled within a factor ``gain``."""
        c, g = self.similarity()
        return c >= correlation and 1 / gain <= g <= gain

    def band(self, *, level: float = 0.1) -> tuple[float, float]:
        """The frequencies (Hz) where the data's wavelet is above ``level`` of its peak amplitude spectrum."""
        return band_of(self.wavelet, self.dt, level=level)

    def apply(self, gathers: Any, *, time_dim: int = -2) -> np.ndarray:
        """``gathers`` shaped to the training wavelet and amplitude, float32, same shape."""
        g = np.asarray(gathers)
        m = self.filter.size // 2
        n_fft = _n_fft(g.shape[time_dim], m)
        spectrum = shaping_spectrum(self.filter, self.trained, n_fft=n_fft, noise=self.noise)
        return _apply_spectrum(g, spectrum, n_fft, time_dim=time_dim)

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: source, gain, band and fit."""
        lo, hi = self.band()
        correlation, scale = self.similarity()
        out: dict[str, Any] = {"source": self.source, "gain": self.gain, "band_hz": [lo, hi], "noise": self.noise,
                               "filter_taps": int(self.filter.size), "correlation_with_trained": correlation,
                               "scale_against_trained": scale}
        if self.fit is not None:
            out["fit"] = self.fit
        return out


def band_of(filter_taps: Any, dt: float, *, level: float = 0.1) -> tuple[float, float]:
    """Lowest and highest frequency (Hz) where the filter's amplitude spectrum exceeds ``level`` of its peak."""
    taps = np.asarray(filter_taps, dtype=np.float64)
    n = max(4 * taps.size, 256)
    amplitude = np.abs(np.fft.rfft(taps, n=n))
    freqs = np.fft.rfftfreq(n, d=dt)
    above = np.nonzero(amplitude >= level * amplitude.max())[0]
    if above.size == 0:
        return 0.0, 0.0
    return float(freqs[above[0]]), float(freqs[above[-1]])


def shape_gathers(gathers: Any, shaping: Shaping, *, time_dim: int = -2) -> np.ndarray:
    """``shaping.apply(gathers)``: a function for pipelines that hold a :class:`Shaping`."""
    return shaping.apply(gathers, time_dim=time_dim)


def shaping_from_wavelet(wavelet: Any, trained: Any, *, dt: float, noise: float = DEFAULT_NOISE,
                         max_lag: int | None = None) -> Shaping:
    """The shaping for data recorded with a known ``wavelet`` (same time axis and origin as ``trained``).

    ``f`` is the Wiener ratio ``W conj(R) / (|R|^2 + noise max|R|^2)`` on lags ``-m .. m``
    (``m`` default: the traces' length), which is ``W / R`` where the training wavelet
    ``R`` has energy.
    """
    _check_noise(noise)
    w = np.asarray(wavelet, dtype=np.float64).ravel()
    r = np.asarray(trained, dtype=np.float64).ravel()
    if w.size != r.size:
        raise DataError(f"shaping: the wavelet has {w.size} samples, the trained wavelet {r.size}; resample it to "
                        f"the network's time axis first")
    if not np.any(w):
        raise DataError("shaping: the wavelet is zero everywhere")
    m = w.size - 1 if max_lag is None else int(max_lag)
    n_fft = _n_fft(w.size, m)
    wf, rf = np.fft.rfft(w, n=n_fft), np.fft.rfft(r, n=n_fft)
    power = np.abs(rf) ** 2
    ratio = np.fft.irfft(wf * np.conj(rf) / (power + noise * power.max()), n=n_fft)
    taps = ratio[np.arange(-m, m + 1) % n_fft]
    return Shaping(filter=taps, trained=r, dt=float(dt), noise=noise, source="wavelet file")


def estimate_filter(simulated: Any, observed: Any, *, max_lag: int, damping: float = 1e-3) -> tuple[np.ndarray, float]:
    """The one filter (lags ``-max_lag .. max_lag``) that turns every simulated trace into the observed one.

    Args:
        simulated: gathers ``(N, S, T, R)`` simulated with the training wavelet in a model of the data.
        observed: the recorded gathers, same shape.
        max_lag: the filter's half-length in samples.
        damping: prewhitening of the least-squares fit (see :func:`fwi_plugins.wavelet.matching_filter`).

    Returns:
        ``(taps, fit)``: the filter and the share of the observed energy it explains.
    """
    import torch

    from .wavelet import apply_filter, matching_filter

    sim = torch.as_tensor(np.asarray(simulated, dtype=np.float64))
    obs = torch.as_tensor(np.asarray(observed, dtype=np.float64))
    if sim.shape != obs.shape or sim.ndim != 4:
        raise DataError(f"shaping: simulated {tuple(sim.shape)} and observed {tuple(obs.shape)} gathers must both "
                        f"be (N, S, T, R)")
    # One survey, one wavelet: every sample's traces go into one fit.
    pooled_sim = sim.movedim(2, -1).reshape(1, -1, sim.shape[2]).movedim(-1, 1)
    pooled_obs = obs.movedim(2, -1).reshape(1, -1, obs.shape[2]).movedim(-1, 1)
    taps = matching_filter(pooled_sim, pooled_obs, max_lag=max_lag, damping=damping, time_dim=1)
    matched = apply_filter(pooled_sim, taps, time_dim=1)
    energy = float(pooled_obs.square().sum()) or 1.0
    fit = 1.0 - float((matched - pooled_obs).square().sum()) / energy
    return taps[0].numpy(), fit
