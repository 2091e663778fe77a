"""The building blocks of generated velocity maps: layers, interfaces, folds, faults, salt, random fields.

Shared by the OpenFWI-like families (:mod:`.families`) and the realistic-geology ones
(:mod:`.geology`); pure numpy, each drawing from the random stream it is handed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["apply_faults", "folds", "gaussian_field", "interface_depths", "layer_count",
           "layer_velocities", "paint_layers", "salt_mask"]


def layer_count(rng: np.random.Generator, opts: Any, variant: str) -> int:
    lo = opts.min_layers if opts.min_layers is not None else (3 if variant == "a" else 5)
    hi = opts.max_layers if opts.max_layers is not None else (8 if variant == "a" else 12)
    return int(rng.integers(lo, max(lo, hi) + 1))


def interface_depths(rng: np.random.Generator, n_layers: int, top: float, bottom: float,
                      min_thickness: float) -> np.ndarray:
    """``n_layers - 1`` sorted depths in ``(top, bottom)``, at least ``min_thickness`` apart."""
    k = n_layers - 1
    if k <= 0:
        return np.zeros(0)
    span = bottom - top - (k + 1) * min_thickness
    if span <= 0:
        return np.linspace(top, bottom, k + 2)[1:-1]
    # Uniform cut points with a guaranteed gap: OpenFWI's thickness spread (1 to ~35 cells of 70).
    cuts = np.sort(rng.uniform(0, span, k))
    return top + min_thickness * np.arange(1, k + 1) + cuts


def layer_velocities(rng: np.random.Generator, n: int, vmin: float, vmax: float, variant: str) -> np.ndarray:
    if variant == "a":
        # Sorted uniform draws: velocity grows with depth, as in FlatVel-A / CurveVel-A.
        return np.sort(np.round(rng.uniform(vmin, vmax, n)))
    # "b": an overall increase with depth, but neighbours jump by large, signed contrasts.
    span = vmax - vmin
    v = np.empty(n)
    v[0] = rng.uniform(vmin, vmin + 0.4 * span)
    for i in range(1, n):
        trend = vmin + span * (0.2 + 0.8 * i / max(n - 1, 1))
        step = rng.uniform(0.15, 0.45) * span * rng.choice((-1.0, 1.0), p=(0.3, 0.7))
        # Half memory of the layer above, half pull towards the depth trend.
        v[i] = np.clip(0.5 * (v[i - 1] + step) + 0.5 * trend, vmin, vmax)
        if abs(v[i] - v[i - 1]) < 0.1 * span:
            v[i] = np.clip(v[i - 1] + np.sign(step) * 0.1 * span, vmin, vmax)
    return np.round(v)


def folds(rng: np.random.Generator, nx: int, nz: int, amplitude: float, wavelength: float) -> np.ndarray:
    """A smooth vertical displacement across x: a sum of 1-3 sines, peak amplitude <= amplitude * nz."""
    x = np.arange(nx, dtype=np.float64)
    out = np.zeros(nx)
    for _ in range(int(rng.integers(1, 4))):
        lam = wavelength * nx * rng.uniform(0.5, 2.0)
        out += rng.uniform(-1, 1) * np.sin(2 * np.pi * x / lam + rng.uniform(0, 2 * np.pi))
    peak = np.abs(out).max()
    if peak > 0:
        out *= rng.uniform(0.3, 1.0) * amplitude * nz / peak
    return out


def paint_layers(depth: np.ndarray, interfaces: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Velocity at each (possibly displaced) depth: layer index = number of interfaces above.

    Args:
        depth: ``(nz, nx)`` depth (in cells) at which each grid point samples the layering.
        interfaces: ``(k, nx)`` interface depths per column.
        velocities: ``(k + 1,)`` layer velocities, top first.
    """
    index = (depth[None] >= interfaces[:, None, :]).sum(axis=0)
    return velocities[index]


def apply_faults(rng: np.random.Generator, depth: np.ndarray, n_faults: int, max_throw: float) -> np.ndarray:
    """Shift the sampled depth on the hanging-wall side of straight dipping faults."""
    nz, nx = depth.shape
    z, x = np.mgrid[0:nz, 0:nx].astype(np.float64)
    out = depth.copy()
    for _ in range(n_faults):
        x0 = rng.uniform(0.2 * nx, 0.8 * nx)
        dip = np.deg2rad(rng.uniform(45, 80)) * rng.choice((-1.0, 1.0))
        throw = rng.uniform(0.25, 1.0) * max_throw * nz * rng.choice((-1.0, 1.0))
        side = (x - x0 - z / np.tan(dip)) > 0
        out = out - throw * side
    return out


def salt_mask(rng: np.random.Generator, nz: int, nx: int) -> np.ndarray:
    """A star-shaped blob (radius a low-order Fourier series of the angle), mostly in the lower half."""
    zc = rng.uniform(0.45, 0.8) * nz
    xc = rng.uniform(0.2, 0.8) * nx
    radius = rng.uniform(0.1, 0.25) * min(nz, nx)
    stretch = rng.uniform(0.8, 1.8)  # diapirs are taller than wide
    z, x = np.mgrid[0:nz, 0:nx].astype(np.float64)
    dz, dx = (z - zc) / stretch, x - xc
    theta = np.arctan2(dz, dx)
    r = np.ones_like(theta)
    for k in range(2, 5):
        r += rng.uniform(0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.hypot(dz, dx) <= radius * r


def gaussian_field(rng: np.random.Generator, nz: int, nx: int, lz: float, lx: float) -> np.ndarray:
    """Unit-variance stationary Gaussian field with Gaussian correlation lengths (cells), by FFT."""
    pad_z, pad_x = nz + int(3 * lz), nx + int(3 * lx)  # padding avoids wrap-around correlation
    noise = rng.standard_normal((pad_z, pad_x))
    kz = np.fft.fftfreq(pad_z)[:, None]
    kx = np.fft.rfftfreq(pad_x)[None, :]
    filt = np.exp(-2 * (np.pi ** 2) * ((kz * lz) ** 2 + (kx * lx) ** 2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=(pad_z, pad_x))[:nz, :nx]
    std = field.std()
    return (field - field.mean()) / std if std > 0 else field
