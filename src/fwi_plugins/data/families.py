"""Generated velocity families: seeded, reproducible, any grid size, pure numpy.

Eight families follow OpenFWI's (flat or curved layers, with or without faults, each in an
"a" variant with fewer layers and velocity increasing with depth, and a "b" variant with
more layers, larger contrasts and velocity inversions); ``salt`` (salt bodies in folded
sediments) and ``smooth`` (Gaussian random fields on a depth trend) are two families
OpenFWI lacks, for out-of-distribution tests. ``docs/datasets.md`` compares them with the
real OpenFWI maps (``benchmarks/calibrate_families.py``).

Map ``i`` of a split is drawn from its own random stream, seeded by (seed, family, split,
i): it does not change when the split sizes do.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OptionError
from ..options import to_dict
from ..survey import Survey
from .dataset import SPLITS, Normalization, SeismicDataset
from .options import (ChannelsOptions, CurveFaultOptions, CurveOptions, FaultOptions, FamilyOptions, LayerOptions,
                      SaltDomeOptions, SaltOptions, SmoothOptions, SteepBedsOptions, ThrustOptions)

GENERATOR_VERSION = "1"


# -- building blocks ---------------------------------------------------------------
def _layer_count(rng: np.random.Generator, opts: Any, variant: str) -> int:
    lo = opts.min_layers if opts.min_layers is not None else (3 if variant == "a" else 5)
    hi = opts.max_layers if opts.max_layers is not None else (8 if variant == "a" else 12)
    return int(rng.integers(lo, max(lo, hi) + 1))


def _interface_depths(rng: np.random.Generator, n_layers: int, top: float, bottom: float,
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


def _layer_velocities(rng: np.random.Generator, n: int, vmin: float, vmax: float, variant: str) -> np.ndarray:
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


def _folds(rng: np.random.Generator, nx: int, nz: int, amplitude: float, wavelength: float) -> np.ndarray:
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


def _paint_layers(depth: np.ndarray, interfaces: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Velocity at each (possibly displaced) depth: layer index = number of interfaces above.

    Args:
        depth: ``(nz, nx)`` depth (in cells) at which each grid point samples the layering.
        interfaces: ``(k, nx)`` interface depths per column.
        velocities: ``(k + 1,)`` layer velocities, top first.
    """
    index = (depth[None] >= interfaces[:, None, :]).sum(axis=0)
    return velocities[index]


def _apply_faults(rng: np.random.Generator, depth: np.ndarray, n_faults: int, max_throw: float) -> np.ndarray:
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


def _salt_mask(rng: np.random.Generator, nz: int, nx: int) -> np.ndarray:
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


def _gaussian_field(rng: np.random.Generator, nz: int, nx: int, lz: float, lx: float) -> np.ndarray:
    """Unit-variance stationary Gaussian field with Gaussian correlation lengths (cells), by FFT."""
    pad_z, pad_x = nz + int(3 * lz), nx + int(3 * lx)  # padding avoids wrap-around correlation
    noise = rng.standard_normal((pad_z, pad_x))
    kz = np.fft.fftfreq(pad_z)[:, None]
    kx = np.fft.rfftfreq(pad_x)[None, :]
    filt = np.exp(-2 * (np.pi ** 2) * ((kz * lz) ** 2 + (kx * lx) ** 2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=(pad_z, pad_x))[:nz, :nx]
    std = field.std()
    return (field - field.mean()) / std if std > 0 else field


# -- the families ------------------------------------------------------------------
def _layered(rng: np.random.Generator, nz: int, nx: int, opts: Any, variant: str, *, curved: bool,
             faulted: bool) -> np.ndarray:
    n_layers = _layer_count(rng, opts, variant)
    # OpenFWI's layers are rarely thinner than ~5 cells of 70 (10th percentile 7).
    min_thickness = max(1.0, nz / 14.0)
    base = _interface_depths(rng, n_layers, 0.0, float(nz), min_thickness)
    velocities = _layer_velocities(rng, n_layers, opts.vmin, opts.vmax, variant)
    interfaces = np.repeat(base[:, None], nx, axis=1)
    if curved:
        shape = _folds(rng, nx, nz, opts.fold_amplitude, opts.fold_wavelength)
        # Every interface follows the same fold with its own strength, as in CurveVel-A's maps.
        strength = rng.uniform(0.6, 1.0, size=(len(base), 1))
        interfaces = interfaces + strength * shape[None, :]
    depth = np.repeat(np.arange(nz, dtype=np.float64)[:, None], nx, axis=1)
    if faulted:
        n_faults = opts.max_faults if opts.max_faults is not None else (1 if variant == "a" else 2)
        depth = _apply_faults(rng, depth, int(rng.integers(1, n_faults + 1)), opts.max_throw)
    return _paint_layers(depth, interfaces, velocities)


def flatvel(rng: np.random.Generator, nz: int, nx: int, opts: LayerOptions, variant: str) -> np.ndarray:
    """Flat layers."""
    return _layered(rng, nz, nx, _with_fold(opts), variant, curved=False, faulted=False)


def curvevel(rng: np.random.Generator, nz: int, nx: int, opts: CurveOptions, variant: str) -> np.ndarray:
    """Folded layers."""
    return _layered(rng, nz, nx, opts, variant, curved=True, faulted=False)


def flatfault(rng: np.random.Generator, nz: int, nx: int, opts: FaultOptions, variant: str) -> np.ndarray:
    """Flat layers offset by dipping normal or reverse faults."""
    return _layered(rng, nz, nx, _with_fold(opts), variant,
                    curved=False, faulted=True)


def curvefault(rng: np.random.Generator, nz: int, nx: int, opts: CurveFaultOptions, variant: str) -> np.ndarray:
    """Folded layers offset by faults."""
    return _layered(rng, nz, nx, opts, variant, curved=True, faulted=True)


def salt(rng: np.random.Generator, nz: int, nx: int, opts: SaltOptions, variant: str) -> np.ndarray:
    """Salt bodies (high, constant velocity) intruding folded sediments."""
    background = _layered(rng, nz, nx, _LayerView(opts, min_layers=opts.min_layers or 4,
                                                   max_layers=opts.max_layers or 9, max_faults=None),
                          "a", curved=True, faulted=False)
    # Sediments around salt are slower than the salt: compress them below it.
    v_salt = min(opts.salt_velocity, opts.vmax)
    background = opts.vmin + (background - opts.vmin) * (v_salt - 200 - opts.vmin) / max(opts.vmax - opts.vmin, 1)
    for _ in range(int(rng.integers(1, opts.max_bodies + 1))):
        background[_salt_mask(rng, nz, nx)] = v_salt
    return background


def smooth(rng: np.random.Generator, nz: int, nx: int, opts: SmoothOptions, variant: str) -> np.ndarray:
    """A smooth random medium: a linear depth trend plus an anisotropic Gaussian random field."""
    span = opts.vmax - opts.vmin
    top = rng.uniform(opts.vmin, opts.vmin + 0.3 * span)
    bottom = rng.uniform(opts.vmin + 0.6 * span, opts.vmax)
    trend = np.linspace(top, bottom, nz)[:, None]
    field = _gaussian_field(rng, nz, nx, opts.correlation_z * nz, opts.correlation_x * nx)
    return np.clip(trend + opts.roughness * span * field, opts.vmin, opts.vmax)


class _LayerView:
    """Options seen through a few overrides (the salt background's layering)."""

    def __init__(self, base: Any, **overrides: Any) -> None:
        self._base, self._overrides = base, overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._base, name)


def _with_fold(opts: Any) -> Any:
    """Flat families carry no fold options; the layer builder reads them as zero."""
    return _LayerView(opts, fold_amplitude=0.0, fold_wavelength=1.0)


def _geology(name: str) -> Callable[[np.ndarray, int, int, Any, str], np.ndarray]:
    """A generator of :mod:`.geology`, imported when first called (that module builds on this one)."""
    def generate_map(rng: np.random.Generator, nz: int, nx: int, opts: Any, variant: str) -> np.ndarray:
        from . import geology

        return getattr(geology, name)(rng, nz, nx, opts, variant)

    generate_map.__name__ = generate_map.__qualname__ = name
    return generate_map


# -- registry ----------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """One generated family: its generator, variant, options class and description."""

    name: str
    generate: Callable[[np.random.Generator, int, int, Any, str], np.ndarray]
    variant: str
    options: type
    description: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("flatvel-a", flatvel, "a", LayerOptions, "flat layers, 3-8, velocity increasing with depth"),
    Family("flatvel-b", flatvel, "b", LayerOptions, "flat layers, 5-12, large contrasts, inversions"),
    Family("curvevel-a", curvevel, "a", CurveOptions, "folded layers, 3-8, velocity increasing with depth"),
    Family("curvevel-b", curvevel, "b", CurveOptions, "folded layers, 5-12, large contrasts, inversions"),
    Family("flatfault-a", flatfault, "a", FaultOptions, "flat layers cut by one fault"),
    Family("flatfault-b", flatfault, "b", FaultOptions, "flat layers with inversions cut by up to two faults"),
    Family("curvefault-a", curvefault, "a", CurveFaultOptions, "folded layers cut by one fault"),
    Family("curvefault-b", curvefault, "b", CurveFaultOptions,
           "folded layers with inversions cut by up to two faults"),
    Family("salt", salt, "a", SaltOptions, "salt bodies in folded sediments (not in OpenFWI)"),
    Family("smooth", smooth, "a", SmoothOptions, "smooth Gaussian random fields on a depth trend (not in OpenFWI)"),
    Family("thrust", _geology("thrust"), "a", ThrustOptions,
           "folded thin beds cut by 1-3 thrusts that repeat the section (not in OpenFWI)"),
    Family("steep-beds", _geology("steep_beds"), "a", SteepBedsOptions,
           "steep thin beds under an angular unconformity (not in OpenFWI)"),
    Family("salt-dome", _geology("salt_dome"), "a", SaltDomeOptions,
           "salt diapir with an overhanging cap or tongue, beds dragged up its flanks (not in OpenFWI)"),
    Family("channels", _geology("channels"), "a", ChannelsOptions,
           "thin beds holding fast and slow channels and lenses (not in OpenFWI)"),
)}

_SPLIT_CODE = {name: i for i, name in enumerate(SPLITS)}


def _family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        from ..errors import UnknownNameError

        raise UnknownNameError("velocity family", name, FAMILIES) from None


def generate(name: str, n: int, *, options: FamilyOptions | None = None, split: str = "train",
             start: int = 0) -> np.ndarray:
    """Maps ``start .. start + n - 1`` of a family's split: ``(n, 1, nz, nx)`` float32 m/s."""
    family = _family(name)
    opts = options if options is not None else family.options()
    tag = zlib.crc32(name.encode())
    out = np.empty((n, 1, opts.nz, opts.nx), np.float32)
    for i in range(n):
        rng = np.random.default_rng([opts.seed, tag, _SPLIT_CODE[split], start + i])
        out[i, 0] = family.generate(rng, opts.nz, opts.nx, opts, family.variant)
    return out


def resolve_survey(spec: str, nz: int, nx: int, *, vmin: float = 1500.0, vmax: float = 4500.0) -> Survey:
    """A survey from a preset name or file, on an ``nz x nx`` grid (files must match it)."""
    if spec in ("openfwi", "small", ""):
        preset = Survey.small if spec == "small" else Survey.openfwi
        return preset(nz=nz, nx=nx, vmin=min(vmin, 1500.0), vmax=max(vmax, 4500.0))
    survey = Survey.load(spec)
    if (survey.nz, survey.nx) != (nz, nx):
        raise OptionError(f"survey {spec}: grid {survey.nz} x {survey.nx} differs from the dataset's {nz} x {nx}; "
                          f"set nz={survey.nz} nx={survey.nx} or edit the survey")
    return survey


def build_family(name: str, options: FamilyOptions | None = None) -> SeismicDataset:
    """A :class:`SeismicDataset` of generated maps (gathers are simulated on first use)."""
    family = _family(name)
    opts = options if options is not None else family.options()
    if not isinstance(opts, family.options):
        raise OptionError(f"dataset {name!r}: expected {family.options.__name__}, got {type(opts).__name__}")
    survey = resolve_survey(opts.survey, opts.nz, opts.nx, vmin=opts.vmin, vmax=opts.vmax)
    sizes = {"train": opts.n_train, "val": opts.n_val, "test": opts.n_test}
    velocity = {split: (lambda split=split, n=n: generate(name, n, options=opts, split=split))
                for split, n in sizes.items() if n}
    attrs = {"generator": f"fwi_plugins.data.families:{name}", "generator_version": GENERATOR_VERSION,
             "family": name, "seed": opts.seed, "options": to_dict(opts)}
    return SeismicDataset(name, survey=survey, velocity=velocity, split_sizes=sizes, attrs=attrs,
                          normalization=Normalization(vmin=opts.vmin, vmax=opts.vmax))


def _factory(name: str) -> Callable[[Any], SeismicDataset]:
    def factory(options: Any = None) -> SeismicDataset:
        return build_family(name, options)

    factory.__name__ = factory.__qualname__ = "build_" + name.replace("-", "_")
    factory.__doc__ = f"Build the generated {name!r} dataset ({FAMILIES[name].description})."
    return factory


build_flatvel_a = _factory("flatvel-a")
build_flatvel_b = _factory("flatvel-b")
build_curvevel_a = _factory("curvevel-a")
build_curvevel_b = _factory("curvevel-b")
build_flatfault_a = _factory("flatfault-a")
build_flatfault_b = _factory("flatfault-b")
build_curvefault_a = _factory("curvefault-a")
build_curvefault_b = _factory("curvefault-b")
build_salt = _factory("salt")
build_smooth = _factory("smooth")
build_thrust = _factory("thrust")
build_steep_beds = _factory("steep-beds")
build_salt_dome = _factory("salt-dome")
build_channels = _factory("channels")
