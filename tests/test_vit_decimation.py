"""The ``vit`` backbone's ``time_decimation``: an anti-aliasing low-pass, then every k-th time sample.

The filter is measured on the module's own decimation step with sinusoids, and checked against
scipy.signal, which designs and applies its filters with its own code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from fwi_plugins import api
from fwi_plugins.errors import OptionError
from fwi_plugins.manager import FWIPluginManager
from fwi_plugins.specs import IOShape

SMALL = {"size": "tiny", "dim": 16, "depth": 1, "heads": 2, "decoder_dim": 8, "patch_time": 8, "patch_receiver": 4}
#: A trace length that neither 2 nor 3 divides.
ODD_TIME = IOShape(shots=2, time=95, receivers=13, depth=16, width=20)
#: The filter's specification (see ``fwi_plugins.builtins.vit``): -6 dB at 0.8 of the decimated
#: Nyquist frequency, transition band from 0.6 to 1.0 of it, 60 dB stop band.
CUTOFF, ATTENUATION_DB = 0.8, 60.0


def build(shape: IOShape = ODD_TIME, *, seed: int = 0, **options):
    spec = FWIPluginManager().load_all().get("backbone", "vit")
    torch.manual_seed(seed)
    return spec.load()(spec.parse_options({**SMALL, **options}), shape=shape)


def decimator(k: int, time: int):
    """The decimation step of a ``vit`` built with ``time_decimation=k`` for traces of ``time`` samples."""
    model = build(IOShape(shots=1, time=time, receivers=8, depth=8, width=8), time_decimation=k)
    return model.decimate


def interior(step, n_out: int, half: int = 0) -> slice:
    """Decimated samples whose filter window (``step``'s, or ``half`` each side) stays inside the trace."""
    edge = math.ceil(max(step.pad, half) / step.factor)
    return slice(edge, n_out - edge)


def sinusoids(nu: list[float], k: int, time: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosines and sines at ``nu`` x the decimated Nyquist frequency, ``(time, 2 * len(nu))``.

    Returns the traces and the same waves at every k-th sample (the ideal decimated output).
    """
    f = np.repeat(np.asarray(nu) / (2 * k), 2)  # cycles per original sample
    phase = np.tile([0.0, -np.pi / 2], len(nu))
    waves = np.cos(2 * np.pi * f * np.arange(time)[:, None] + phase)
    return waves, waves[::k]


def through(step, traces: np.ndarray) -> np.ndarray:
    """``traces`` ``(T, R)`` through a decimation step, as float32 gathers; ``float64`` out."""
    with torch.no_grad():
        out = step(torch.from_numpy(traces.astype(np.float32))[None, None])
    return out[0, 0].double().numpy()


@pytest.mark.parametrize("k", [2, 3])
def test_passes_below_and_stops_above_the_decimated_nyquist(k):
    time = 60 * k + 1
    step = decimator(k, time)
    keep = interior(step, math.ceil(time / k))
    waves, ideal = sinusoids([0.1, 0.3, 0.5], k, time)
    # Amplitude and timing together: the decimated wave is the ideal one, sample by sample.
    error = np.abs(through(step, waves) - ideal)[keep].max()
    assert error <= 0.01, f"pass band must come through within 1 % and stay aligned, off by {error:.2%}"
    # These would fold back onto 0.95, 0.7 and 0.2 of the decimated Nyquist frequency.
    waves, _ = sinusoids([1.05, 1.3, 1.8], k, time)
    level_db = 20 * np.log10(np.abs(through(step, waves))[keep].max())
    assert level_db <= -40.0, f"what would alias must be 40 dB down, is {level_db:.1f} dB"


@pytest.mark.parametrize("k", [2, 3])
def test_filter_and_decimation_match_scipy(k):
    time = 400
    step = decimator(k, time)
    numtaps, beta = signal.kaiserord(ATTENUATION_DB, 2 * (1 - CUTOFF) / k)
    numtaps += 1 - numtaps % 2  # odd: a whole-sample delay
    reference = signal.firwin(numtaps, CUTOFF / k, window=("kaiser", beta))
    # The module keeps its taps in float32: rounding moves each (all below 0.4) by under 3e-8.
    np.testing.assert_allclose(step.taps.double().numpy(), reference, rtol=0, atol=1e-7)

    x = np.random.default_rng(k).standard_normal((time, 6)).astype(np.float32).astype(np.float64)
    ours = through(step, x)
    # resample_poly applies the given taps centred with zeros beyond the trace (the module
    # reflects), so only the interior compares. There the two differ by float32 rounding alone: of
    # the module's taps (57 * 3e-8 * max|x|) and of its sums of 57 products (57 * 2^-24 * sum|h| *
    # max|x|), together under 6e-6 max|x|.
    theirs = signal.resample_poly(x, 1, k, window=reference, axis=0)
    keep = interior(step, ours.shape[0])
    np.testing.assert_allclose(ours[keep], theirs[keep], rtol=0, atol=1e-5 * np.abs(x).max())

    # scipy's own anti-aliasing filter (Hamming window, 20k + 1 taps, cutoff at the decimated
    # Nyquist) on a band-limited signal plus a strong tone both filters stop: each passes the band
    # below half the decimated Nyquist within 0.3 %, so the two agree within 1 % of its amplitude.
    waves, _ = sinusoids([0.15, 0.45], k, time)
    tone, _ = sinusoids([1.8], k, time)
    band = waves.sum(axis=1)
    x = (band + 2.0 * tone[:, 0])[:, None]
    ours = through(step, x)[:, 0]
    theirs = signal.decimate(x[:, 0], k, ftype="fir", zero_phase=True)
    keep = interior(step, ours.shape[0], half=10 * k)
    assert np.abs(ours - theirs)[keep].max() <= 0.01 * np.abs(band).max()


def test_one_leaves_the_network_as_it_was():
    x = torch.randn(2, ODD_TIME.shots, ODD_TIME.time, ODD_TIME.receivers)
    plain, off = build(), build(time_decimation=1)
    assert off.decimate is None
    assert [(k, v.shape) for k, v in off.state_dict().items()] == [(k, v.shape) for k, v in plain.state_dict().items()]
    assert [n for n, _ in off.named_buffers()] == [n for n, _ in plain.named_buffers()]
    off.load_state_dict(plain.state_dict(), strict=True)
    plain.eval()
    off.eval()
    with torch.no_grad():
        # The forward as it was before the option: patches straight from the gathers.
        tokens = off.patch_embed(off.patchify(x)) + off.pos_embed
        for block in off.blocks:
            tokens = block(tokens)
        before = torch.tanh(off.head(off.decoder(off.norm(tokens), off.grid)))
        assert torch.equal(off(x), before)
        assert torch.equal(plain(x), before)


def test_shipped_weights_still_load_strictly_and_fix_the_option():
    model = api.build_backbone("vit", pretrained="default")  # loads with strict=True
    assert model.decimate is None
    assert not any("decimate" in name for name, _ in model.named_buffers())
    with pytest.raises(OptionError, match="time_decimation"):
        api.build_backbone("vit", {"time_decimation": 2}, pretrained="default")


@pytest.mark.parametrize("k", [2, 3])
def test_decimated_network_shapes_and_nothing_trainable_added(k):
    model, plain = build(time_decimation=k), build()
    time = math.ceil(ODD_TIME.time / k)
    pt, pr = model.patch
    assert model.grid == (math.ceil(time / pt), math.ceil(ODD_TIME.receivers / pr))
    assert model.pos_embed.shape[1] == model.grid[0] * model.grid[1]
    assert model.patch_embed.in_features == ODD_TIME.shots * pt * pr
    x = torch.randn(3, ODD_TIME.shots, ODD_TIME.time, ODD_TIME.receivers)
    assert model.decimate(x).shape == (3, ODD_TIME.shots, time, ODD_TIME.receivers)
    y = model(x)
    assert y.shape == (3, 1, ODD_TIME.depth, ODD_TIME.width)
    assert torch.isfinite(y).all()

    taps = model.decimate.taps
    assert not taps.requires_grad
    assert all(p is not taps for p in model.parameters())
    assert [(n, p.shape) for n, p in model.named_parameters()] == [(n, p.shape) for n, p in plain.named_parameters()]
    assert model.state_dict().keys() == plain.state_dict().keys(), "the filter must not be saved"
    model.load_state_dict(plain.state_dict(), strict=True)
    assert "decimate.taps" in dict(model.named_buffers()), "a buffer, so it moves with the network"
    assert model.double().decimate.taps.dtype == torch.float64


def test_bad_values_are_named():
    spec = FWIPluginManager().load_all().get("backbone", "vit")
    with pytest.raises(OptionError, match="time_decimation must be at least 1, got 0"):
        spec.parse_options({"time_decimation": "0"})
    with pytest.raises(OptionError, match="time_decimation"):
        spec.parse_options({"time_decimation": "two"})
    with pytest.raises(OptionError, match="time_decimation 3 needs traces longer than 28 samples"):
        build(IOShape(shots=1, time=20, receivers=8, depth=8, width=8), time_decimation=3)
