"""wavelet=estimate in the torchwave physics: the deepwave plugin's matched misfit, through the shared options.

The observed gathers are recorded by calling deepwave directly with a source neither physics
knows: a 20 Hz Ricker (the survey says 15 Hz) three times louder than the survey's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins import api
from fwi_plugins.survey import Survey
from fwi_plugins.wavelet import ricker

SURVEY = Survey.small(nz=24, nx=36, nt=300, n_sources=3)
SCALE, PEAK = 3.0, 20.0


def truth() -> np.ndarray:
    z = np.arange(SURVEY.nz)[:, None]
    x = np.arange(SURVEY.nx)[None, :]
    v = 2000.0 + 1500.0 * (z > 8 + 0.1 * x) + 700.0 * (z > 17)
    return v.astype(np.float32)[None, None]


@pytest.fixture(scope="module")
def observed() -> torch.Tensor:
    import deepwave

    s = SURVEY
    wavelet = SCALE * ricker(s.times(), PEAK, s.delay)
    out = deepwave.scalar(
        torch.from_numpy(truth()[0, 0]).expand(s.n_shots, -1, -1).contiguous(), s.dx, s.dt,
        source_amplitudes=torch.tensor(wavelet, dtype=torch.float32).view(1, 1, -1).repeat(s.n_shots, 1, 1),
        source_locations=torch.tensor(s.sources).long().view(-1, 1, 2),
        receiver_locations=torch.tensor(s.receivers).long().view(1, -1, 2).repeat(s.n_shots, 1, 1),
        accuracy=4, pml_width=s.pml_width, pml_freq=s.peak_freq, max_vel=s.vmax)
    return out.receiver_amplitudes.transpose(1, 2)[None]


def misfit_of_truth(name: str, wavelet: str, observed: torch.Tensor) -> float:
    physics = api.build_physics(name, {"wavelet": wavelet}, survey=SURVEY)
    with torch.no_grad():
        predicted = physics.simulate(torch.from_numpy(truth()))
        return float(physics.misfit(predicted, observed)) / float(observed.pow(2).mean())


def test_the_estimated_wavelet_explains_data_of_another_wavelet_and_scale(observed):
    survey_wavelet = misfit_of_truth("torchwave", "survey", observed)
    estimated = misfit_of_truth("torchwave", "estimate", observed)
    assert estimated < 0.01 * survey_wavelet  # measured 0.0020 against 0.39 of the data's mean square


def test_torchwave_and_deepwave_agree_on_the_estimate_misfit(observed):
    torchwave = misfit_of_truth("torchwave", "estimate", observed)
    deepwave = misfit_of_truth("deepwave", "estimate", observed)
    # The two propagators agree within 1e-3 in their gathers; the matched misfits measured 5e-5 apart.
    assert torchwave == pytest.approx(deepwave, rel=1e-3)


def test_the_wavelet_options_are_the_deepwave_plugins(observed):
    from fwi_deepwave.options import DeepwaveOptions
    from fwi_torchwave.options import TorchwaveOptions

    from fwi_plugins.errors import OptionError

    physics = api.build_physics("torchwave", {"wavelet": "estimate", "wavelet_lag": "0.05"}, survey=SURVEY)
    assert physics.wavelet_max_lag == round(0.05 / SURVEY.dt)
    assert api.build_physics("torchwave", survey=SURVEY).wavelet_max_lag is None
    shared = ("wavelet", "wavelet_lag", "wavelet_damping")
    assert all(TorchwaveOptions.__dataclass_fields__[f] == DeepwaveOptions.__dataclass_fields__[f] for f in shared)
    for bad in ({"wavelet": "measured"}, {"wavelet_lag": "-1"}, {"wavelet_damping": "0"}):
        with pytest.raises(OptionError):
            api.build_physics("torchwave", bad, survey=SURVEY)
