"""Realistic-geology families: thrusts, steep beds under an unconformity, salt domes, channels.

OpenFWI's families (and their generated twins in :mod:`.families`) hold thick layers,
straight faults and blob-shaped salt. These families add what real sections have: thin
interbeds on a compaction trend with velocity inversions, thrusts that repeat the section,
steep beds truncated by an erosion surface, diapirs with overhangs and dragged flanks, and
laterally bounded channels and lenses.

Each deformation works on the *sampling coordinate*: a point of the final map looks up the
undeformed bed stack at the place its rock came from, so faults offset and repeat beds
exactly as the geometry says. Thicknesses are given in cells of a 70-cell-deep grid and
scale with ``nz``. Pure numpy; map ``i`` of a split comes from the stream seeded in
:func:`.families.generate`, so these maps are as reproducible as the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .layers import folds, gaussian_field, paint_layers
from .options import ChannelsOptions, SaltDomeOptions, StrataOptions, SteepBedsOptions, ThrustOptions

Rng = np.random.Generator


# -- beds on a compaction trend ------------------------------------------------------
def _cells(nz: int, cells_of_70: float) -> float:
    """A length given in cells of a 70-cell-deep grid, on this grid (never below one cell)."""
    return max(1.0, cells_of_70 * nz / 70.0)


def _grid(nz: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    z, x = np.mgrid[0:nz, 0:nx].astype(np.float64)
    return z, x


def _compaction(rng: Rng, opts: StrataOptions) -> Callable[[np.ndarray], np.ndarray]:
    """Velocity against depth (a fraction of the map depth): fast rise near the top, slower below.

    Leaves ~10 % of the range above the deepest trend value for fast beds and bodies.
    """
    span = opts.vmax - opts.vmin
    top = rng.uniform(opts.vmin, opts.vmin + 0.15 * span)
    bottom = rng.uniform(opts.vmin + 0.7 * span, opts.vmin + 0.9 * span)
    power = rng.uniform(0.6, 0.9)  # porosity loss is fastest in the first few hundred metres

    def trend(depth_fraction: np.ndarray) -> np.ndarray:
        return top + (bottom - top) * np.clip(depth_fraction, 0.0, 1.6) ** power

    return trend


def _bed_tops(rng: Rng, nz: int, opts: StrataOptions, top: float, bottom: float) -> np.ndarray:
    """Sorted bed boundaries (cells) from ``top`` to ``bottom``, each bed min_bed..max_bed thick."""
    thin, thick = _cells(nz, opts.min_bed), _cells(nz, opts.max_bed)
    count = int(np.ceil((bottom - top) / thin)) + 1  # enough beds, a fixed number of draws
    tops = top + np.cumsum(rng.uniform(thin, thick, count))
    return tops[tops < bottom]


def _bed_offsets(rng: Rng, n: int, opts: StrataOptions, scale: float = 1.0) -> np.ndarray:
    """Signed per-bed velocity offsets (m/s) around the trend; a share ``inversions`` step down."""
    step = rng.uniform(0.4, 1.0, n) * opts.contrast * scale * (opts.vmax - opts.vmin)
    down = rng.random(n) < opts.inversions
    offsets = np.zeros(n)
    for i in range(1, n):
        # Half memory of the bed above keeps contrasts local and the trend in charge.
        offsets[i] = 0.5 * offsets[i - 1] + (-step[i] if down[i] else step[i])
    return offsets - offsets.mean()


def _strata(rng: Rng, nz: int, opts: StrataOptions, trend: Callable[[np.ndarray], np.ndarray],
            top: float, bottom: float) -> tuple[np.ndarray, np.ndarray]:
    """A bed stack: boundaries ``(k,)`` and velocities ``(k + 1,)`` (trend at mid-bed + offset)."""
    tops = _bed_tops(rng, nz, opts, top, bottom)
    edges = np.r_[top, tops, bottom]
    mid = 0.5 * (edges[:-1] + edges[1:])
    return tops, trend(mid / nz) + _bed_offsets(rng, len(mid), opts)


def _paint(coordinate: np.ndarray, tops: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Velocity of the bed each point's stratigraphic coordinate falls in."""
    return paint_layers(coordinate, tops[:, None], velocities)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _sine_fold(rng: Rng, nx: int, amplitude: float) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth fold (two sines, peak ``amplitude`` cells) defined at any, even off-grid, x."""
    lam = rng.uniform(0.6, 1.6, 2) * nx
    phase = rng.uniform(0, 2 * np.pi, 2)
    weight = rng.uniform(-1, 1, 2)
    norm = amplitude / max(np.abs(weight).sum(), 1e-9)
    return lambda x: norm * (weight[0] * np.sin(2 * np.pi * x / lam[0] + phase[0])
                             + weight[1] * np.sin(2 * np.pi * x / lam[1] + phase[1]))


def _finish(v: np.ndarray, opts: StrataOptions) -> np.ndarray:
    return np.clip(v, opts.vmin, opts.vmax)


# -- thrust ----------------------------------------------------------------------------
def _undo_thrust(rng: Rng, z: np.ndarray, x: np.ndarray, x0: float, vergence: float,
                 opts: ThrustOptions) -> tuple[np.ndarray, np.ndarray]:
    """Move hanging-wall points back down the fault plane to where their rock came from.

    The slip dies out towards a blind tip, so beds ahead of the tip fold instead of breaking
    (a fault-propagation fold); below the tip the hanging wall rides over the footwall and
    the beds between the two cut-offs appear twice in a column.
    """
    nz = z.shape[0]
    dip = np.deg2rad(rng.uniform(opts.min_dip, opts.max_dip))
    z0 = rng.uniform(0.5, 0.8) * nz
    ux, uz = vergence * np.cos(dip), -np.sin(dip)  # up-dip unit vector (z points down)
    above = (x - x0) * (-vergence * np.sin(dip)) + (z - z0) * (-np.cos(dip)) > 0
    along = (x - x0) * ux + (z - z0) * uz
    tip = rng.uniform(0.4, 1.2) * nz  # up-dip distance of the tip; beyond the top: an emergent thrust
    slip = rng.uniform(0.6, 1.0) * opts.max_slip * nz
    taper = _smoothstep((tip - along) / (0.25 * nz))
    shift = np.where(above, slip * taper, 0.0)
    return z - shift * uz, x - shift * ux


def thrust(rng: Rng, nz: int, nx: int, opts: ThrustOptions, variant: str) -> np.ndarray:
    """Folded thin beds cut by 1-3 thrusts whose hanging walls repeat the section."""
    z, x = _grid(nz, nx)
    # An imbricate fan: thrusts of one vergence, side by side; undone youngest (front-most) first.
    n_thrusts = int(rng.integers(1, opts.max_thrusts + 1))
    vergence = rng.choice((-1.0, 1.0))
    roots = np.sort(rng.uniform(0.15, 0.85, n_thrusts))[::-1 if vergence > 0 else 1] * nx
    for x0 in roots:
        z, x = _undo_thrust(rng, z, x, float(x0), vergence, opts)
    fold = _sine_fold(rng, nx, opts.fold_amplitude * nz)
    trend = _compaction(rng, opts)
    tops, velocities = _strata(rng, nz, opts, trend, -1.5 * nz, 2.5 * nz)
    strat = z - fold(x)
    # Erosion levels the uplifted hanging walls: the surface cuts the stack near its top.
    return _finish(_paint(strat - np.median(strat[0]), tops, velocities), opts)


# -- steep beds under an unconformity --------------------------------------------------
def _tilted_package(rng: Rng, z: np.ndarray, x: np.ndarray, opts: SteepBedsOptions,
                    trend: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Older beds dipping 30-60 degrees, thin and many, on the trend of a deeper burial."""
    nz, nx = z.shape
    dip = np.deg2rad(rng.uniform(opts.min_dip, opts.max_dip))
    normal = rng.choice((-1.0, 1.0)) * x * np.sin(dip) + z * np.cos(dip)
    normal = normal + _sine_fold(rng, nx, _cells(nz, 2.0))(z)  # beds not quite planar
    lo, hi = normal.min(), normal.max()
    n_beds = int(rng.integers(opts.min_beds, opts.max_beds + 1))
    widths = np.maximum(rng.uniform(0.6, 1.4, n_beds) * (hi - lo) / n_beds, _cells(nz, opts.min_bed))
    tops = lo + np.cumsum(widths)[:-1]
    # Thin interbeds of contrasting lithology: larger offsets than the younger cover.
    offsets = _bed_offsets(rng, n_beds, opts, scale=1.6)
    uplift = rng.uniform(0.15, 0.35)  # buried deeper before erosion: faster than the cover
    return trend(z / nz + uplift) + _paint(normal, tops, offsets)


def steep_beds(rng: Rng, nz: int, nx: int, opts: SteepBedsOptions, variant: str) -> np.ndarray:
    """Steep thin beds truncated by an undulating erosion surface, gentle younger beds on top."""
    z, x = _grid(nz, nx)
    trend = _compaction(rng, opts)
    old = _tilted_package(rng, z, x, opts, trend)
    depth = rng.uniform(opts.min_unconformity, opts.max_unconformity) * nz
    surface = depth + folds(rng, nx, nz, 0.05, 0.5)[None, :]
    tilt = np.tan(np.deg2rad(rng.uniform(-5, 5)))
    cover = z - tilt * (x - nx / 2) - _sine_fold(rng, nx, _cells(nz, 1.5))(x)
    tops, velocities = _strata(rng, nz, opts, trend, -0.5 * nz, 1.5 * nz)
    v = np.where(z < surface, _paint(cover, tops, velocities), old)
    gradient = rng.uniform(-1, 1) * opts.lateral_gradient * (opts.vmax - opts.vmin)
    return _finish(v + gradient * (x / nx - 0.5), opts)


# -- salt dome -------------------------------------------------------------------------
def _cap_level(rng: Rng, z: np.ndarray, x: np.ndarray, xc: float, zc: float, tongue: bool) -> np.ndarray:
    """Approximate signed distance (cells) to a mushroom cap or a one-sided tongue at (xc, zc)."""
    nz, nx = z.shape
    if tongue:  # an allochthonous sheet: long and thin on one side
        side = rng.choice((-1.0, 1.0))
        long, short = rng.uniform(0.3, 0.5) * nx, rng.uniform(0.08, 0.14) * nx
        half_width = np.where(side * (x - xc) > 0, long, short)
        top, base = rng.uniform(0.05, 0.08) * nz, rng.uniform(0.04, 0.06) * nz
    else:
        half_width = np.full_like(x, rng.uniform(0.18, 0.3) * nx)
        top, base = rng.uniform(0.08, 0.13) * nz, rng.uniform(0.04, 0.07) * nz
    # A domed top and a flatter base: the overhang of a mushroom.
    height = np.where(z < zc, top, base)
    r = np.hypot((x - xc) / half_width, (z - zc) / height)
    return (r - 1.0) * np.minimum(half_width, height)


def _salt_level(rng: Rng, z: np.ndarray, x: np.ndarray, opts: SaltDomeOptions) -> tuple[np.ndarray, np.ndarray]:
    """Level sets of the salt (negative inside): the whole body, and the stem and cap alone.

    A stem rises from the bottom (or from a mother layer), widening downwards into a
    pedestal, and feeds a cap; the stem leans and wiggles a little.
    """
    nz, nx = z.shape
    zc = rng.uniform(0.18, 0.35) * nz
    xc = rng.uniform(0.3, 0.7) * nx
    lean = rng.uniform(-0.3, 0.3)
    centre = xc + lean * (z - zc) + _sine_fold(rng, nz, 0.03 * nx)(z)
    half = rng.uniform(0.05, 0.09) * nx * (1 + 1.5 * ((z - zc) / (nz - zc)) ** 2)
    stem = np.maximum(np.abs(x - centre) - np.maximum(half, 1.5), zc - z)
    cap = _cap_level(rng, z, x, xc, zc, rng.random() < opts.tongue)
    body = np.minimum(stem, cap)
    if rng.random() < opts.source_layer:
        source = rng.uniform(0.8, 0.92) * nz + _sine_fold(rng, nx, 0.02 * nz)(x)
        body = np.minimum(body, source - z)
    return body, np.minimum(stem, cap)


def _connected(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The part of ``mask`` 4-connected to ``seed`` (grown by repeated one-cell dilation)."""
    grown = mask & seed
    while True:
        step = grown.copy()
        step[1:] |= grown[:-1]
        step[:-1] |= grown[1:]
        step[:, 1:] |= grown[:, :-1]
        step[:, :-1] |= grown[:, 1:]
        step &= mask
        if (step == grown).all():
            return grown
        grown = step


def salt_dome(rng: Rng, nz: int, nx: int, opts: SaltDomeOptions, variant: str) -> np.ndarray:
    """A diapir with an overhanging cap or tongue; beds dragged up its flanks and arched over it."""
    z, x = _grid(nz, nx)
    body, diapir = _salt_level(rng, z, x, opts)
    level = body + _cells(nz, 1.2) * gaussian_field(rng, nz, nx, _cells(nz, 3), _cells(nz, 3))
    # Rough edges may pinch off islands; the salt is one body, grown from the core of the diapir.
    salt = _connected(level < 0, diapir <= np.quantile(diapir, 0.02))
    reach = rng.uniform(0.06, 0.12) * nx
    lift = rng.uniform(0.5, 1.0) * opts.drag * nz * np.exp(-np.maximum(diapir, 0) / reach)
    v_salt = min(opts.salt_velocity, opts.vmax)
    trend = _compaction(rng, opts)
    tops, velocities = _strata(rng, nz, opts, trend, -0.5 * nz, 1.5 * nz)
    v = np.minimum(_paint(z + lift, tops, velocities), v_salt - 150)
    if rng.random() < opts.carapace:  # a slower rim over the crest, above the salt in its column
        crest = np.where(salt.any(axis=0), salt.argmax(axis=0), nz)
        rim = ~salt & (level < _cells(nz, 2.0)) & (z < crest[None, :])
        v = np.where(rim, v_salt - rng.uniform(600, 1100), v)
    return _finish(np.where(salt, v_salt, v), opts)


# -- channels and lenses ---------------------------------------------------------------
def _body_mask(rng: Rng, s: np.ndarray, x: np.ndarray, x0: float, s0: float, width: float,
               thick: float) -> np.ndarray:
    """A channel (flat top, curved base), a biconvex lens or a sigmoidal lens."""
    u = (x - x0) / width
    bulge = np.clip(1 - u * u, 0.0, None)
    kind = rng.integers(3)
    if kind == 0:
        return (np.abs(u) < 1) & (s >= s0) & (s <= s0 + thick * np.sqrt(bulge))
    if kind == 1:
        return (np.abs(u) < 1) & (np.abs(s - s0) <= 0.5 * thick * bulge)
    centre = s0 + 0.4 * thick * np.tanh(2 * u) * rng.choice((-1.0, 1.0))
    return (np.abs(u) < 1) & (np.abs(s - centre) <= 0.5 * thick * bulge)


def _add_bodies(rng: Rng, v: np.ndarray, s: np.ndarray, x: np.ndarray, opts: ChannelsOptions) -> np.ndarray:
    """Paint channels and lenses in stratigraphic coordinates; some stack on the one before."""
    nz, nx = v.shape
    span = opts.vmax - opts.vmin
    out = v.copy()
    x0 = s0 = width = thick = 0.0
    for i in range(int(rng.integers(opts.min_bodies, opts.max_bodies + 1))):
        stacked = i > 0 and rng.random() < 0.35
        if stacked:  # the next body of a channel belt: above and a little aside
            x0, s0 = x0 + rng.uniform(-0.5, 0.5) * width, s0 - thick * rng.uniform(0.7, 1.0)
        else:
            x0, s0 = rng.uniform(0.1, 0.9) * nx, rng.uniform(0.15, 0.9) * nz
        width = rng.uniform(0.1, 0.25) * nx
        thick = rng.uniform(_cells(nz, 3.0), _cells(nz, 7.0))
        mask = _body_mask(rng, s, x, x0, s0, width, thick)
        row, col = int(np.clip(s0, 0, nz - 1)), int(np.clip(x0, 0, nx - 1))
        delta = rng.choice((-1.0, 1.0)) * rng.uniform(0.4, 1.0) * opts.anomaly * span
        out = np.where(mask, v[row, col] + delta, out)
    return out


def channels(rng: Rng, nz: int, nx: int, opts: ChannelsOptions, variant: str) -> np.ndarray:
    """Gently folded thin beds with channels and lenses, faster and slower than their host."""
    z, x = _grid(nz, nx)
    s = z - folds(rng, nx, nz, opts.fold_amplitude, 0.9)[None, :]
    trend = _compaction(rng, opts)
    tops, velocities = _strata(rng, nz, opts, trend, -0.5 * nz, 1.5 * nz)
    gradient = rng.uniform(-1, 1) * opts.lateral_gradient * (opts.vmax - opts.vmin)
    v = _paint(s, tops, velocities) + gradient * (x / nx - 0.5)
    return _finish(_add_bodies(rng, v, s, x, opts), opts)
