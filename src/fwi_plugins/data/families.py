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
from . import geology
from .dataset import SPLITS, Normalization, SeismicDataset
from .layers import (apply_faults, folds, gaussian_field, interface_depths, layer_count, layer_velocities, paint_layers,
                     salt_mask)
from .options import (ChannelsOptions, CurveFaultOptions, CurveOptions, FaultOptions, FamilyOptions, LayerOptions,
                      SaltDomeOptions, SaltOptions, SmoothOptions, SteepBedsOptions, ThrustOptions)

GENERATOR_VERSION = "1"


# -- the families ------------------------------------------------------------------
def _layered(rng: np.random.Generator, nz: int, nx: int, opts: Any, variant: str, *, curved: bool,
             faulted: bool) -> np.ndarray:
    n_layers = layer_count(rng, opts, variant)
    # OpenFWI's layers are rarely thinner than ~5 cells of 70 (10th percentile 7).
    min_thickness = max(1.0, nz / 14.0)
    base = interface_depths(rng, n_layers, 0.0, float(nz), min_thickness)
    velocities = layer_velocities(rng, n_layers, opts.vmin, opts.vmax, variant)
    interfaces = np.repeat(base[:, None], nx, axis=1)
    if curved:
        shape = folds(rng, nx, nz, opts.fold_amplitude, opts.fold_wavelength)
        # Every interface follows the same fold with its own strength, as in CurveVel-A's maps.
        strength = rng.uniform(0.6, 1.0, size=(len(base), 1))
        interfaces = interfaces + strength * shape[None, :]
    depth = np.repeat(np.arange(nz, dtype=np.float64)[:, None], nx, axis=1)
    if faulted:
        n_faults = opts.max_faults if opts.max_faults is not None else (1 if variant == "a" else 2)
        depth = apply_faults(rng, depth, int(rng.integers(1, n_faults + 1)), opts.max_throw)
    return paint_layers(depth, interfaces, velocities)


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
        background[salt_mask(rng, nz, nx)] = v_salt
    return background


def smooth(rng: np.random.Generator, nz: int, nx: int, opts: SmoothOptions, variant: str) -> np.ndarray:
    """A smooth random medium: a linear depth trend plus an anisotropic Gaussian random field."""
    span = opts.vmax - opts.vmin
    top = rng.uniform(opts.vmin, opts.vmin + 0.3 * span)
    bottom = rng.uniform(opts.vmin + 0.6 * span, opts.vmax)
    trend = np.linspace(top, bottom, nz)[:, None]
    field = gaussian_field(rng, nz, nx, opts.correlation_z * nz, opts.correlation_x * nx)
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
    """A generator of :mod:`.geology`, by name."""
    def generate_map(rng: np.random.Generator, nz: int, nx: int, opts: Any, variant: str) -> np.ndarray:
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
