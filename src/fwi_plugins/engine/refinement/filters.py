"""Filters refinement applies: a zero-phase low-pass of gathers in time, a Gaussian blur of velocity maps."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_blur", "lowpass"]


def lowpass(data: torch.Tensor, cutoff: float, dt: float, *, dim: int = -2) -> torch.Tensor:
    """Zero-phase low-pass filter along ``dim`` (time) with a cosine taper.

    The response is 1 below ``cutoff``, falls smoothly to 0 at ``1.5 * cutoff`` and is
    applied in the frequency domain, so arrivals keep their times; the taper avoids the
    ringing of a brick-wall filter. Differentiable.

    Args:
        data: gathers, time along ``dim``.
        cutoff: corner frequency in Hz.
        dt: time sample interval in seconds.
        dim: the time dimension.

    Returns:
        The filtered tensor, same shape and dtype.
    """
    n = data.shape[dim]
    # Padding to twice the length keeps the filter from wrapping late energy onto early times.
    n_fft = 2 * n
    freqs = torch.fft.rfftfreq(n_fft, d=dt, device=data.device)
    ramp = ((freqs - cutoff) / (0.5 * cutoff)).clamp(0.0, 1.0)
    response = (0.5 * (1.0 + torch.cos(torch.pi * ramp))).to(data.dtype)
    shape = [1] * data.ndim
    shape[dim] = response.numel()
    spectrum = torch.fft.rfft(data, n=n_fft, dim=dim) * response.view(shape)
    return torch.fft.irfft(spectrum, n=n_fft, dim=dim).narrow(dim, 0, n)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(N, C, Z, X)`` images; edges are reflected."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.sum()
    n, c, z, w = images.shape
    flat = images.reshape(n * c, 1, z, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect" if w > radius else "replicate"),
                    g.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect" if z > radius else "replicate"),
                    g.view(1, 1, -1, 1))
    return flat.reshape(n, c, z, w)
