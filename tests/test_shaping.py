"""Wavelet shaping: data of another wavelet, phase or scale turned into data of the trained wavelet.

References are built independently of the shaping code: traces are a sparse reflectivity
convolved (numpy) with wavelets from ``fwi_plugins.wavelet.ricker``; the shaped data must
match the same reflectivity convolved with the trained 15 Hz Ricker.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins.acquisition import AcquisitionMap, native_survey
from fwi_plugins.cli import main
from fwi_plugins.engine.shaped import check_shaping, surface_velocity
from fwi_plugins.errors import SurveyError
from fwi_plugins.shaping import Shaping, estimate_filter, shaping_from_wavelet
from fwi_plugins.survey import Survey
from fwi_plugins.wavelet import phase_rotate, ricker

DT, NT = 0.001, 1000
TIMES = np.arange(NT) * DT
TRAINED = ricker(TIMES, 15.0, 0.1)


def _reflectivity(n_traces: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.zeros((n_traces, NT))
    for row in r:
        spikes = rng.choice(np.arange(150, 550), size=8, replace=False)  # every wavelet ends in the trace
        row[spikes] = rng.normal(size=8)
    return r


def _traces(reflectivity: np.ndarray, wavelet: np.ndarray) -> np.ndarray:
    """(1, S, T, 1) gathers: each reflectivity row convolved with ``wavelet`` (peak delay kept)."""
    rows = np.array([np.convolve(row, wavelet)[:NT] for row in reflectivity])
    return rows[None, :, :, None]


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(("wavelet", "scale"), [
    (ricker(TIMES, 25.0, 0.06), 1.0),                        # higher peak, earlier peak
    (phase_rotate(TRAINED, 90.0), 1.0),                      # the trained wavelet, quadrature phase
    (TRAINED, 3.85),                                         # the trained wavelet, stronger (5 m cells)
    (phase_rotate(ricker(TIMES, 20.0, 0.12), -40.0), 0.2),   # all at once
])
def test_a_known_wavelet_is_shaped_to_the_trained_one(wavelet, scale):
    refl = _reflectivity()
    data = scale * _traces(refl, wavelet)
    expected = _traces(refl, TRAINED)
    shaped = shaping_from_wavelet(scale * wavelet, TRAINED, dt=DT).apply(data)
    assert _relative(shaped, expected) < 0.03
    # Without shaping the data are far from the trained wavelet's.
    assert _relative(data, expected) > 0.5


def test_the_wavelet_estimated_from_data_and_a_simulation_shapes_like_the_known_one():
    refl = _reflectivity(seed=1)
    simulated = _traces(refl, TRAINED)
    wavelet = 2.5 * phase_rotate(ricker(TIMES, 21.5, 0.08), 30.0)
    observed = _traces(refl, wavelet)
    taps, fit = estimate_filter(simulated, observed, max_lag=300)
    assert fit > 0.99
    shaping = Shaping(filter=taps, trained=TRAINED, dt=DT)
    assert _relative(shaping.apply(observed), simulated) < 0.03
    correlation, gain = shaping.similarity()
    expected_gain = np.linalg.norm(wavelet) / np.linalg.norm(TRAINED)
    assert not shaping.matches_trained() and correlation < 0.9 and gain == pytest.approx(expected_gain, rel=0.05)
    # The same simulation as observed data: nothing to shape.
    same = Shaping(filter=estimate_filter(simulated, simulated, max_lag=300)[0], trained=TRAINED, dt=DT)
    assert same.matches_trained()


def test_a_low_frequency_wavelet_is_shaped_only_within_its_band():
    """An 8 Hz source carries little above 25 Hz: shaping must not amplify what is not there."""
    refl = _reflectivity(seed=2)
    wavelet = ricker(TIMES, 8.0, 0.19)
    data = _traces(refl, wavelet)
    shaped = shaping_from_wavelet(wavelet, TRAINED, dt=DT).apply(data)
    spectrum = np.abs(np.fft.rfft(shaped[0, :, :, 0], axis=-1)).mean(0)
    trained = np.abs(np.fft.rfft(_traces(refl, TRAINED)[0, :, :, 0], axis=-1)).mean(0)
    freqs = np.fft.rfftfreq(NT, DT)
    # At most the trained spectrum, up to the float32 rounding of the output.
    assert np.all(spectrum[freqs > 5] <= 1.05 * trained[freqs > 5] + 1e-4 * trained.max())
    band = Shaping(filter=shaping_from_wavelet(wavelet, TRAINED, dt=DT).filter, trained=TRAINED, dt=DT).band()
    assert band[1] < 20.0


def test_problems_found_by_the_shaping_are_named():
    taps = np.zeros(61)
    taps[30] = 1.0
    fine = Shaping(filter=taps, trained=TRAINED, dt=DT, fit=0.9)
    assert check_shaping(fine, Survey.openfwi()) == []
    unexplained = Shaping(filter=taps, trained=TRAINED, dt=DT, fit=0.2)
    assert any("explains only 20 %" in p for p in check_shaping(unexplained, Survey.openfwi()))
    low = shaping_from_wavelet(ricker(TIMES, 6.0, 0.25), TRAINED, dt=DT)
    low.fit = 0.9
    assert any("frequencies up to about" in p for p in check_shaping(low, Survey.openfwi()))


def test_surface_velocity_from_the_first_breaks_of_a_homogeneous_layer():
    native = Survey.openfwi()
    rx = np.arange(70) * 10.0
    gathers = np.zeros((1, 5, NT, 70), np.float32)
    for s, (_, sx) in enumerate(native.sources):
        arrival = 0.1 + np.abs(rx - sx * 10.0) / 2300.0
        for r, t in enumerate(arrival):
            if t < 0.95:
                gathers[0, s, :, r] = ricker(TIMES, 15.0, t) * 0.5 ** (r / 70)
    assert surface_velocity(gathers, native) == pytest.approx(2300.0, rel=0.05)


def test_shaped_data_are_mapped_by_geometry_not_by_their_wavelet():
    """A lower-peaked source on the network's own geometry used to be refused: its delay ate the recording."""
    native = native_survey()
    low = Survey.openfwi(peak_freq=8.0)
    with pytest.raises(SurveyError, match="recording"):
        AcquisitionMap(low, native)
    shaped = AcquisitionMap(low, native, shaped=True)
    assert shaped.scale == 1.0 and shaped.is_identity


@pytest.fixture(scope="module")
def twenty_hertz(tmp_path_factory):
    """Two generated maps and their gathers simulated with a 20 Hz Ricker on the network's survey."""
    pytest.importorskip("deepwave")
    from fwi_plugins import api
    from fwi_plugins.data.families import generate

    truth = generate("curvevel-a", 2, split="test")
    physics = api.build_physics("deepwave", survey=Survey.openfwi(peak_freq=20.0))
    folder = tmp_path_factory.mktemp("twenty")
    np.save(folder / "g.npy", np.asarray(api.simulate(truth, physics), np.float32))
    return folder, truth


def test_fwi_predict_shapes_another_wavelet_by_default(twenty_hertz):
    from fwi_plugins.data.io import read_velocity

    folder, truth = twenty_hertz
    errors = {}
    for shaping in ("none", "auto"):
        out = folder / shaping
        result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(folder / "g.npy"),
                                           "--out", str(out), "--quiet", "--shaping", shaping])
        assert result.exit_code == 0, result.output
        velocity, attrs = read_velocity(out / "velocity.nc")
        errors[shaping] = float(np.abs(velocity - truth).mean())
    assert errors["auto"] < 0.75 * errors["none"], errors
    assert "shaping" in str(attrs) and "estimated" in str(attrs)


def test_gathers_without_signal_are_refused(tmp_path):
    np.save(tmp_path / "g.npy", np.zeros((1, 5, 1000, 70), np.float32))
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(tmp_path / "g.npy"),
                                       "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1 and "holds no recorded signal" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_weights_record_the_wavelet_that_prediction_shapes_to(tmp_path):
    import torch

    from fwi_plugins import api
    from fwi_plugins.errors import DataError
    from fwi_plugins.pretrained import read_config
    from fwi_plugins.specs import IOShape
    from fwi_plugins.weights import save_weights

    shape = {"shots": 5, "time": 1000, "receivers": 70, "depth": 70, "width": 70}
    tiny = {"size": "tiny", "dim": 16, "depth": 1, "heads": 2, "decoder_dim": 8}
    model = api.build_backbone("vit", tiny, shape=IOShape(**shape))
    spec = api.get_spec("backbone", "vit")
    path = tmp_path / "w.safetensors"
    save_weights(model, path, metadata={"backbone": "vit", "backbone_options": tiny, "shape": shape,
                                        "wavelet": {"kind": "ricker", "peak_freq": 20.0, "delay": 0.08}})
    config = read_config(spec, path)
    native = native_survey(config.shape, config.wavelet)
    assert (native.peak_freq, native.delay) == (20.0, 0.08)
    assert native_survey(config.shape).peak_freq == 15.0  # weights that record none: OpenFWI's Ricker
    broken = tmp_path / "broken.safetensors"
    save_weights(torch.nn.Linear(1, 1), broken, metadata={"backbone": "vit", "wavelet": {"kind": "gabor"}})
    with pytest.raises(DataError, match=r"broken.safetensors: metadata 'wavelet'"):
        read_config(spec, broken)


def test_the_depth_an_input_is_predicted_to_does_not_follow_a_wavelet_that_shaping_removes():
    native = native_survey()
    high = Survey.openfwi(peak_freq=30.0)  # a 30 Hz source on the network's own line
    assert AcquisitionMap.deepest(high, native, 10.0) == 35  # unshaped: the stretch follows the wavelet, 0.5
    assert AcquisitionMap.deepest(high, native, 10.0, shaped=True) == 70
