"""Velocity units: the one rule telling m/s from km/s and mm/s, used wherever velocity comes in."""

from __future__ import annotations

#: A model whose fastest value is below this many "m/s" is in km/s: nothing that carries
#: sound is that slow, while 1.5-20 covers water to the fastest rock in km/s.
KM_PER_S_BELOW = 20.0
#: A model whose slowest value is above this many "m/s" is in mm/s.
MM_PER_S_ABOVE = 1e5
#: Velocities outside this span are not rock, water or air in m/s: most likely wrong units.
PLAUSIBLE_VELOCITY = (100.0, 20000.0)


def velocity_units_guess(lo: float, hi: float) -> str | None:
    """``"km/s"`` or ``"mm/s"`` when a velocity range ``lo..hi`` looks like those units, else ``None``."""
    if hi < KM_PER_S_BELOW:
        return "km/s"
    if lo > MM_PER_S_ABOVE:
        return "mm/s"
    return None
