"""Realistic-geology families: registered, reproducible, and each with its defining structure.

Every structure test would fail on a plain flat-layer map (checked on ``flatvel-b``).
"""

from __future__ import annotations

import numpy as np
import pytest

from fwi_plugins import api
from fwi_plugins.data import families
from fwi_plugins.data.options import (ChannelsOptions, SaltDomeOptions, SteepBedsOptions, StrataOptions,
                                      ThrustOptions)

GEOLOGY = {"thrust": ThrustOptions, "steep-beds": SteepBedsOptions, "salt-dome": SaltDomeOptions,
           "channels": ChannelsOptions}


def maps(name: str, n: int = 8, **options) -> np.ndarray:
    return families.generate(name, n, options=families.FAMILIES[name].options(seed=11, **options))[:, 0]


def flat_maps(n: int = 8) -> np.ndarray:
    return families.generate("flatvel-b", n, options=families.FAMILIES["flatvel-b"].options(seed=11))[:, 0]


def test_geology_families_are_registered_datasets_with_their_options():
    names = set(api.list_components("dataset"))
    for name, options in GEOLOGY.items():
        assert name in names and families.FAMILIES[name].options is options
        assert issubclass(options, StrataOptions)
        assert api.get_spec("dataset", name).options is options


@pytest.mark.parametrize("name", list(GEOLOGY))
def test_same_seed_same_maps_and_map_i_ignores_split_size(name):
    opts = families.FAMILIES[name].options(nz=30, nx=36, seed=4)
    v = families.generate(name, 3, options=opts)
    assert v.shape == (3, 1, 30, 36) and v.dtype == np.float32
    assert opts.vmin <= v.min() and v.max() <= opts.vmax
    np.testing.assert_array_equal(families.generate(name, 3, options=opts), v)
    np.testing.assert_array_equal(families.generate(name, 5, options=opts)[:3], v)
    np.testing.assert_array_equal(families.generate(name, 1, options=opts, start=2)[0], v[2])
    assert not np.array_equal(families.generate(name, 3, options=opts, split="val"), v)


@pytest.mark.parametrize("name", list(GEOLOGY))
def test_velocity_range_and_compaction_trend(name):
    v = maps(name, vmin=1800.0, vmax=4200.0)
    assert v.dtype == np.float32 and 1800 <= v.min() and v.max() <= 4200
    top, bottom = v[:, :10].mean(axis=(1, 2)), v[:, -10:].mean(axis=(1, 2))
    assert (bottom > top + 300).mean() >= 0.85, "velocity should broadly rise with depth"


@pytest.mark.parametrize("name", ["thrust", "salt-dome", "channels"])
def test_beds_are_thin_but_resolvable(name):
    runs = []
    for m in maps(name, 4):
        for col in m.T[::7]:
            edges = np.r_[0, np.flatnonzero(np.diff(col) != 0) + 1, len(col)]
            runs.extend(np.diff(edges))
    assert 2 <= np.median(runs) <= 6  # OpenFWI-style layers: ~10 cells


def _repeats_a_sequence(column: np.ndarray, length: int = 3) -> bool:
    """Whether the run-length-compressed column holds the same ``length`` beds twice."""
    beds = column[np.r_[True, np.diff(column) != 0]]
    seen = set()
    for i in range(len(beds) - length + 1):
        key = tuple(np.round(beds[i:i + length], 2))
        if key in seen:
            return True
        seen.add(key)
    return False


def test_thrusts_repeat_the_section():
    def repeated(ms):
        return np.mean([any(_repeats_a_sequence(col) for col in m.T) for m in ms])

    assert repeated(maps("thrust")) >= 0.75
    assert repeated(flat_maps()) == 0


def _dip_degrees(block: np.ndarray) -> float:
    """Dominant dip of the bedding in ``block``: angle of the structure tensor's main normal from vertical."""
    gz, gx = np.gradient(block.astype(np.float64))
    tensor = np.array([[np.sum(gx * gx), np.sum(gx * gz)], [np.sum(gx * gz), np.sum(gz * gz)]])
    normal = np.linalg.eigh(tensor)[1][:, -1]
    return float(np.degrees(np.arctan2(abs(normal[0]), abs(normal[1]))))


def test_steep_beds_dip_30_to_60_degrees_under_a_gentle_cover():
    lower = [_dip_degrees(m[45:]) for m in maps("steep-beds")]
    upper = [_dip_degrees(m[:8]) for m in maps("steep-beds")]
    assert all(25 <= d <= 65 for d in lower), lower
    assert np.median(lower) >= 30 and max(upper) < 15, upper
    assert max(_dip_degrees(m[45:]) for m in flat_maps()) < 5


def _components(mask: np.ndarray) -> int:
    labels = np.zeros(mask.shape, int)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        count += 1
        stack = [start]
        while stack:
            i, j = stack.pop()
            if 0 <= i < mask.shape[0] and 0 <= j < mask.shape[1] and mask[i, j] and not labels[i, j]:
                labels[i, j] = count
                stack.extend(((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)))
    return count


def _has_overhang(salt: np.ndarray) -> bool:
    """Some row of salt is wider than a row of salt below it (a cap over a narrower stem)."""
    width = salt.sum(axis=1)
    return any(width[i] > 1.5 * width[j] > 0 for i in range(len(width)) for j in range(i + 1, len(width)))


def _flank_lift(m: np.ndarray, salt: np.ndarray) -> float:
    """Mean velocity of beds just beside the salt minus that of beds far from it, row by row."""
    near, far = [], []
    for row, in_salt in zip(m[30:55], salt[30:55]):
        cols = np.flatnonzero(in_salt)
        if not len(cols):
            continue
        distance = np.abs(np.arange(len(row))[:, None] - cols[None, :]).min(axis=1)
        near.extend(row[(distance >= 2) & (distance <= 4)])
        far.extend(row[distance >= 15])
    return float(np.mean(near) - np.mean(far))


def test_salt_dome_is_one_body_with_an_overhang_and_dragged_flanks():
    v_salt = SaltDomeOptions().salt_velocity
    ms = maps("salt-dome", carapace=0.0)
    for m in ms:
        salt = m == v_salt
        assert salt.sum() > 100 and _components(salt) == 1
    assert np.mean([_has_overhang(m == v_salt) for m in ms]) >= 0.75
    assert np.median([_flank_lift(m, m == v_salt) for m in ms]) > 50, "beds should bend up beside the salt"
    assert not any(_has_overhang(m == v_salt) for m in flat_maps())


def _bounded_anomalies(m: np.ndarray, jump: float = 150.0) -> set[int]:
    """Signs of row segments (>= 3 cells, inside the width) faster or slower than both neighbours."""
    found = set()
    for row in m:
        edges = np.flatnonzero(np.abs(np.diff(row)) > jump) + 1
        for a, b in zip(edges[:-1], edges[1:]):
            if b - a >= 3:
                left, right = row[a] - row[a - 1], row[a] - row[b]
                if np.sign(left) == np.sign(right):
                    found.add(int(np.sign(left)))
    return found


def test_channels_hold_fast_and_slow_bodies_that_end_within_the_map():
    found = [_bounded_anomalies(m) for m in maps("channels")]
    assert np.mean([bool(f) for f in found]) >= 0.85
    assert set().union(*found) == {-1, 1}, "both faster and slower bodies"
    assert not any(_bounded_anomalies(m) for m in flat_maps())


def test_bad_geology_options_are_option_errors():
    from fwi_plugins.errors import OptionError

    with pytest.raises(OptionError, match="max_dip"):
        api.load_dataset("thrust", {"min_dip": 50, "max_dip": 30})
    with pytest.raises(OptionError, match="min_bed"):
        api.load_dataset("channels", {"min_bed": 0})
    with pytest.raises(OptionError, match="tongue"):
        api.load_dataset("salt-dome", {"tongue": 2})
