"""Training augmentations of the gathers: the data a network meets after wavelet shaping, not only clean ones.

At prediction time, data of another source wavelet ``W`` are shaped to the training Ricker
(:mod:`fwi_plugins.shaping`), which leaves the training gathers seen through the zero-phase
band ``B(f) = |W|^2 / (|W|^2 + eps max|W|^2)``, with some residual phase error, noise, dead
traces and an amplitude calibration error. A network trained on clean gathers of one
wavelet reads each of these as another earth; seeing them in training, it need not.

The option ``augment`` (:class:`~fwi_plugins.engine.options.TrainOptions`) names them; they
apply in this order, each drawn per sample:

* ``band``: with probability ``prob``, the band ``B`` of a Ricker ``W`` of peak 6-25 Hz
  (log-uniform) and ``eps`` 1e-4 to 1e-2 (log-uniform), applied in the frequency domain;
* ``phase``: with probability ``prob``, every frequency's phase turned by one angle in
  [-30, 30] degrees (as :func:`fwi_plugins.wavelet.phase_rotate`);
* ``noise``: with probability ``prob``, Gaussian noise of RMS 1-10 % of the sample's, white
  or in a Ricker band, and in some samples a few linear events (coherent noise);
* ``dead``: with probability ``prob``, 1-10 % of the traces zeroed (random receivers in
  random shots), and in some samples one receiver column in every shot;
* ``gain``: every sample scaled by a factor log-uniform in [0.8, 1.25].

Everything is torch on the batch's device, vectorised over the batch, and drawn from one
``torch.Generator`` (:func:`augment_generator` seeds it from the training seed, the step and
the process), so a run is reproducible and a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch

from ..options import AUGMENTATIONS, augment_names

__all__ = ["AUGMENTATIONS", "NETWORK_DT", "add_linear_events", "add_noise", "augment_gathers",
           "augment_generator", "band_filter", "drop_traces", "rotate_phase", "scale"]

#: Sample interval (s) of the networks' time axis (OpenFWI's geometry).
NETWORK_DT = 1e-3

_TIME, _SHOT, _RECEIVER = 2, 1, 3
_PEAK_HZ = (6.0, 25.0)  # the shaped-from wavelet's Ricker peak, log-uniform
_EPS = (1e-4, 1e-2)  # the Wiener white-noise level, log-uniform
_PHASE_DEG = 30.0  # residual phase error, uniform in [-30, 30]
_NOISE_LEVEL = (0.01, 0.10)  # noise RMS over the sample's RMS, uniform
_BAND_NOISE = 0.5  # share of noisy samples whose noise is band-limited (else white)
_COHERENT = 0.3  # share of noisy samples that also get linear events
_EVENTS = 3  # at most this many linear events per shot
_EVENT_PEAK = (1.0, 3.0)  # an event's peak amplitude over the noise RMS, uniform
_EVENT_SLOPE = 0.02  # s per receiver (10 m spacing: apparent velocities above 500 m/s)
_DEAD_SHARE = (0.01, 0.10)  # share of a sample's traces zeroed, uniform
_DEAD_COLUMN = 0.25  # share of samples with dead traces that also lose one receiver in every shot
_GAIN = (0.8, 1.25)  # amplitude factor, log-uniform


def augment_generator(seed: int, step: int, rank: int, device: torch.device | str) -> torch.Generator:
    """The generator of the augmentations of optimisation ``step`` on process ``rank`` of training ``seed``.

    Seeded from the three alone (no state carried between steps), so a resumed training
    augments its batches exactly as an uninterrupted one.
    """
    digest = hashlib.blake2b(f"augment/{seed}/{step}/{rank}".encode(), digest_size=8).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest, "little") >> 1)


def augment_gathers(gathers: torch.Tensor, augment: str | Sequence[str], *, prob: float,
                    generator: torch.Generator, dt: float = NETWORK_DT) -> torch.Tensor:
    """A training batch of gathers through the augmentations ``augment`` (see the module's description).

    Args:
        gathers: ``(B, S, T, R)`` raw amplitudes, on ``generator``'s device.
        augment: the option's text (``"band,noise"``, ``"all"``, ``""``) or names from :data:`AUGMENTATIONS`.
        prob: the probability that each of band, phase, noise and dead alters a sample.
        generator: the source of every random draw.
        dt: the time axis' sample interval in seconds.

    Returns:
        A new tensor of the same shape and dtype (``gathers`` itself when ``augment`` is empty);
        samples no augmentation altered are bit-identical to the input.
    """
    names = augment_names(augment) if isinstance(augment, str) else augment_names(",".join(augment))
    if not names:
        return gathers
    if gathers.ndim != 4:
        raise ValueError(f"augment: gathers must be (batch, shot, time, receiver), got shape {tuple(gathers.shape)}")
    x = gathers
    n = x.shape[0]
    draw = _Draw(generator, n, x.device)
    if "band" in names or "phase" in names:
        band = draw.chance(prob) if "band" in names else draw.never()
        peak, eps = draw.log_uniform(*_PEAK_HZ), draw.log_uniform(*_EPS)
        phase = draw.chance(prob) if "phase" in names else draw.never()
        degrees = draw.uniform(-_PHASE_DEG, _PHASE_DEG)
        x = _on_samples(x, band | phase, lambda sub, i: _filter(
            sub, _spectral_response(sub.shape[_TIME], dt, peak[i], eps[i], degrees[i], band[i], phase[i], sub.dtype)))
    if "noise" in names:
        noisy = draw.chance(prob)
        level = draw.uniform(*_NOISE_LEVEL)
        noise_peak = torch.where(draw.chance(_BAND_NOISE), draw.log_uniform(*_PEAK_HZ), 0.0)
        coherent = draw.chance(_COHERENT)
        event_peak = draw.uniform(*_EVENT_PEAK)
        noise_rms = _rms(x) * level  # events' peaks are counted in it
        x = _on_samples(x, noisy, lambda sub, i: add_noise(sub, level[i], generator=generator,
                                                           band_peak_hz=noise_peak[i], dt=dt))
        x = _on_samples(x, noisy & coherent, lambda sub, i: add_linear_events(
            sub, noise_rms[i] * event_peak[i], generator=generator, dt=dt))
    if "dead" in names:
        dead = draw.chance(prob)
        share = draw.uniform(*_DEAD_SHARE)
        column = torch.where(draw.chance(_DEAD_COLUMN), draw.integers(x.shape[_RECEIVER]), -1)
        x = _on_samples(x, dead, lambda sub, i: drop_traces(sub, share[i], generator=generator, column=column[i]))
    if "gain" in names:
        x = scale(x, draw.log_uniform(*_GAIN))
    return x


# -- the augmentations, each on given per-sample parameters ---------------------------------
def band_filter(gathers: torch.Tensor, peak_hz: float | torch.Tensor, eps: float | torch.Tensor, *,
                dt: float = NETWORK_DT) -> torch.Tensor:
    """Gathers through the zero-phase band ``|W|^2 / (|W|^2 + eps max|W|^2)`` of a Ricker ``W`` of ``peak_hz``.

    ``peak_hz`` and ``eps``: one value, or one per sample. ``max`` is over the transform's
    frequencies; the traces are zero-padded to twice their length (no wrap-around).
    """
    n = gathers.shape[0]
    peak, level = _per_sample(peak_hz, n, gathers), _per_sample(eps, n, gathers)
    return _filter(gathers, _band(gathers.shape[_TIME], dt, peak, level, _real(gathers.dtype)))


def rotate_phase(gathers: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Every frequency's phase turned by ``degrees`` (one value or one per sample): ``cos(phi) s + sin(phi) H[s]``."""
    n = gathers.shape[0]
    return _filter(gathers, _rotation(gathers.shape[_TIME], _per_sample(degrees, n, gathers)))


def add_noise(gathers: torch.Tensor, level: float | torch.Tensor, *, generator: torch.Generator,
              band_peak_hz: float | torch.Tensor = 0.0, dt: float = NETWORK_DT) -> torch.Tensor:
    """Gathers plus Gaussian noise whose RMS is ``level`` times each sample's RMS.

    ``band_peak_hz``: per sample, 0 for white noise, else noise in the amplitude band of a
    Ricker of that peak frequency.
    """
    n, n_time = gathers.shape[0], gathers.shape[_TIME]
    noise = torch.randn(gathers.shape, generator=generator, device=gathers.device, dtype=gathers.dtype)
    peak = _per_sample(band_peak_hz, n, gathers)
    if bool((peak > 0).any()):
        freqs = torch.fft.rfftfreq(n_time, d=dt, device=gathers.device, dtype=peak.dtype)
        power = _ricker_power(freqs, peak.clamp_min(1e-6).unsqueeze(1))
        amplitude = (power / power.amax(dim=1, keepdim=True).clamp_min(1e-300)).sqrt().to(gathers.dtype)
        shaped = torch.fft.irfft(torch.fft.rfft(noise, dim=_TIME) * amplitude[:, None, :, None], n=n_time, dim=_TIME)
        noise = torch.where((peak > 0).view(-1, 1, 1, 1), shaped, noise)
    target, actual = _per_sample(level, n, gathers) * _rms(gathers), _rms(noise)
    factor = torch.where(actual > 0, target / actual.clamp_min(1e-30), 0.0)
    return gathers + noise * factor.view(-1, 1, 1, 1).to(gathers.dtype)


def add_linear_events(gathers: torch.Tensor, peak: float | torch.Tensor, *, generator: torch.Generator,
                      dt: float = NETWORK_DT) -> torch.Tensor:
    """Gathers plus 1-3 linear events per shot (coherent noise): Ricker pulses of 6-25 Hz along random
    lines ``t = t0 + slope * receiver``, each of random sign and peak amplitude up to ``peak`` (per sample)."""
    n, n_shots, n_time, n_rec = gathers.shape
    draw = _Draw(generator, n * n_shots * _EVENTS, gathers.device)
    shape = (n, n_shots, _EVENTS, 1, 1)
    t0 = draw.uniform(0.0, n_time * dt).view(shape)
    slope = draw.uniform(-_EVENT_SLOPE, _EVENT_SLOPE).view(shape)
    freq = draw.log_uniform(*_PEAK_HZ).view(shape)
    sign = torch.where(draw.chance(0.5), 1.0, -1.0).view(shape)
    size = draw.uniform(0.3, 1.0).view(shape)
    count = _Draw(generator, n * n_shots, gathers.device).integers(_EVENTS).view(n, n_shots, 1) + 1
    on = (torch.arange(_EVENTS, device=gathers.device) < count).view(shape)
    times = torch.arange(n_time, device=gathers.device, dtype=t0.dtype).view(1, 1, 1, -1, 1) * dt
    receivers = torch.arange(n_rec, device=gathers.device, dtype=t0.dtype).view(1, 1, 1, 1, -1)
    arg = (math.pi * freq * (times - t0 - slope * receivers)).square()
    events = ((1.0 - 2.0 * arg) * torch.exp(-arg) * (sign * size * on)).sum(dim=2)
    amplitude = _per_sample(peak, n, gathers).view(-1, 1, 1, 1)
    return gathers + (events * amplitude).to(gathers.dtype)


def drop_traces(gathers: torch.Tensor, share: float | torch.Tensor, *, generator: torch.Generator,
                column: int | torch.Tensor = -1) -> torch.Tensor:
    """Gathers with ``round(share * S * R)`` traces (at least one) of each sample set to zero.

    ``column``: per sample, a receiver zeroed in every shot as well, or -1 for none.
    """
    n, n_shots, _, n_rec = gathers.shape
    traces = n_shots * n_rec
    count = (_per_sample(share, n, gathers) * traces).round().clamp(1, traces).long()
    keys = torch.rand((n, traces), generator=generator, device=gathers.device)
    rank = keys.argsort(dim=1).argsort(dim=1)
    dead = (rank < count.unsqueeze(1)).view(n, n_shots, n_rec)
    col = torch.as_tensor(column, device=gathers.device).expand(n)
    dead = dead | (torch.arange(n_rec, device=gathers.device) == col.view(-1, 1)).unsqueeze(1)
    return torch.where(dead.unsqueeze(_TIME), torch.zeros((), dtype=gathers.dtype, device=gathers.device), gathers)


def scale(gathers: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """Each sample times its ``factor`` (amplitude calibration error)."""
    return gathers * _per_sample(factor, gathers.shape[0], gathers).view(-1, 1, 1, 1).to(gathers.dtype)


# -- helpers ----------------------------------------------------------------------------------
class _Draw:
    """Per-sample random parameters from one generator, in a fixed order."""

    def __init__(self, generator: torch.Generator, n: int, device: torch.device) -> None:
        self.generator, self.n, self.device = generator, n, device

    def _rand(self) -> torch.Tensor:
        return torch.rand(self.n, generator=self.generator, device=self.device, dtype=torch.float64)

    def chance(self, p: float) -> torch.Tensor:
        return self._rand() < p

    def never(self) -> torch.Tensor:
        return torch.zeros(self.n, dtype=torch.bool, device=self.device)

    def uniform(self, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * self._rand()

    def log_uniform(self, lo: float, hi: float) -> torch.Tensor:
        return torch.exp(self.uniform(math.log(lo), math.log(hi)))

    def integers(self, high: int) -> torch.Tensor:
        return torch.randint(high, (self.n,), generator=self.generator, device=self.device)


def _on_samples(x: torch.Tensor, chosen: torch.Tensor,
                fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``x`` with ``fn(x[i], i)`` in place of the samples ``i`` where ``chosen``; the others untouched."""
    index = chosen.nonzero().squeeze(1)
    if index.numel() == 0:
        return x
    return x.index_copy(0, index, fn(x[index], index))


def _per_sample(value: float | torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, device=like.device, dtype=torch.float64).expand(n)


def _real(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype.is_floating_point else torch.float32


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.double().square().mean(dim=(1, 2, 3)).sqrt()


def _n_fft(n_time: int) -> int:
    return 2 * n_time  # zero padding: a filter's tails land beyond the trace, not on its other end


def _ricker_power(freqs: torch.Tensor, peak_hz: torch.Tensor) -> torch.Tensor:
    """``|W(f)|^2`` of a Ricker of ``peak_hz``, up to a constant: ``f^4 exp(-2 f^2 / f0^2)``."""
    ratio = (freqs / peak_hz).square()
    return ratio.square() * torch.exp(-2.0 * ratio)


def _band(n_time: int, dt: float, peak_hz: torch.Tensor, eps: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    freqs = torch.fft.rfftfreq(_n_fft(n_time), d=dt, device=peak_hz.device, dtype=torch.float64)
    power = _ricker_power(freqs, peak_hz.unsqueeze(1))
    return (power / (power + eps.unsqueeze(1) * power.amax(dim=1, keepdim=True))).to(dtype)


def _rotation(n_time: int, degrees: torch.Tensor) -> torch.Tensor:
    """``exp(-i phi)`` on every frequency but zero (as :func:`fwi_plugins.wavelet.phase_rotate`)."""
    phi = torch.deg2rad(degrees).unsqueeze(1).expand(-1, _n_fft(n_time) // 2 + 1).clone()
    phi[:, 0] = 0.0
    return torch.polar(torch.ones_like(phi), -phi)


def _spectral_response(n_time: int, dt: float, peak_hz: torch.Tensor, eps: torch.Tensor, degrees: torch.Tensor,
                       band: torch.Tensor, phase: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Band and phase rotation as one filter, each where its mask is set (one transform for both)."""
    response = torch.where(band.unsqueeze(1), _band(n_time, dt, peak_hz, eps, torch.float64), 1.0)
    rotation = torch.where(phase.unsqueeze(1), _rotation(n_time, degrees), 1.0 + 0.0j)
    return response * rotation


def _filter(x: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Each sample's traces times its ``response`` ``(B, n_fft // 2 + 1)`` in the frequency domain."""
    n_time = x.shape[_TIME]
    n_fft = _n_fft(n_time)
    spectrum = torch.fft.rfft(x, n=n_fft, dim=_TIME)
    response = response.to(device=x.device, dtype=spectrum.dtype if response.is_complex() else _real(x.dtype))
    out = torch.fft.irfft(spectrum * response[:, None, :, None], n=n_fft, dim=_TIME)
    return out.narrow(_TIME, 0, n_time).contiguous().to(x.dtype)
