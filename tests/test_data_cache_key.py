"""The simulation cache key changes with every physics option and every survey field.

The cache's docstring promises that the key covers the physics' name, version, options and
survey: gathers simulated under one setting must never be served for another. Each case
changes exactly one thing against a base and needs a new key; the tables must name every
field, so an option added later has to be added here too.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fwi_plugins.data.cache_key import cache_key
from fwi_plugins.survey import Survey

SURVEY = Survey.small(nz=12, nx=12, nt=30, n_sources=2)
VELOCITY = np.full((2, 1, 12, 12), 2500.0, np.float32)
IDENTITY = {"generator": "toy", "seed": 0}


@dataclasses.dataclass(frozen=True)
class ToyOptions:
    order: int = 4
    boundary: str = "pml"
    scale: float = 1.0


class OptionedPhysics:
    """A physics whose version never changes: only its options tell settings apart."""

    name = "optioned"
    version = "1"

    def __init__(self, options: ToyOptions, survey: Survey = SURVEY) -> None:
        self.options, self.survey = options, survey


def key(physics) -> str:
    return cache_key(IDENTITY, VELOCITY, physics)[0]


TOY_CHANGES = {"order": 8, "boundary": "none", "scale": 2.0}


@pytest.mark.parametrize("field", sorted(TOY_CHANGES))
def test_every_option_of_a_physics_is_part_of_the_key(field):
    assert {f.name for f in dataclasses.fields(ToyOptions)} == set(TOY_CHANGES)
    base = key(OptionedPhysics(ToyOptions()))
    changed = OptionedPhysics(dataclasses.replace(ToyOptions(), **{field: TOY_CHANGES[field]}))
    assert key(changed) != base


SURVEY_CHANGES = {
    "nz": 13, "nx": 13, "dx": 5.0, "nt": 31, "dt": 0.0005, "sources": ((0.0, 3.0), (0.0, 8.0)),
    "receivers": ((0.0, 1.0), (0.0, 2.0)), "peak_freq": 20.0, "wavelet_delay": 0.2, "pml_width": 10,
    "vmin": 1200.0, "vmax": 5000.0,
}


@pytest.mark.parametrize("field", sorted(SURVEY_CHANGES))
def test_every_survey_field_is_part_of_the_key(field):
    # 'wavelet' has a single allowed value so far, so it cannot change.
    assert {f.name for f in dataclasses.fields(Survey)} - {"wavelet"} == set(SURVEY_CHANGES)
    base = key(OptionedPhysics(ToyOptions()))
    survey = dataclasses.replace(SURVEY, **{field: SURVEY_CHANGES[field]})
    assert key(OptionedPhysics(ToyOptions(), survey)) != base


DEEPWAVE_CHANGES = {"accuracy": 8, "pml_width": 5, "max_vel": 5000.0, "misfit": "ncc", "max_batch": 3,
                    "check": False, "wavelet": "estimate", "wavelet_lag": 0.1, "wavelet_damping": 0.01}


@pytest.mark.parametrize("field", sorted(DEEPWAVE_CHANGES))
def test_every_deepwave_option_is_part_of_the_key(field):
    pytest.importorskip("deepwave")
    from fwi_deepwave.options import DeepwaveOptions
    from fwi_deepwave.physics import build

    assert {f.name for f in dataclasses.fields(DeepwaveOptions)} == set(DEEPWAVE_CHANGES)
    base = key(build(DeepwaveOptions(), survey=SURVEY))
    changed = dataclasses.replace(DeepwaveOptions(), **{field: DEEPWAVE_CHANGES[field]})
    assert key(build(changed, survey=SURVEY)) != base


def test_same_settings_same_key():
    assert key(OptionedPhysics(ToyOptions())) == key(OptionedPhysics(ToyOptions()))
