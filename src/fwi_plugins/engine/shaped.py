"""Prediction through wavelet shaping: the data's wavelet estimated, shaped to the trained one, then predicted.

:func:`predict_shaped` is what ``fwi predict --shaping estimate`` and ``api.predict(...,
shaping="estimate")`` run on gathers of the network's own acquisition (gathers of another
acquisition are mapped onto it first). The estimate needs a model of the earth to simulate
the training wavelet's gathers in; the network provides it::

    start model  --simulate-->  matching filter  --shape-->  predict  --simulate--> ...

The first model is a smooth depth trend whose surface velocity is read from the data's
first arrivals; every later one is the network's answer to the data shaped so far.
See :mod:`fwi_plugins.shaping` for the filter and its inverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DataError, OptionError
from ..shaping import DEFAULT_NOISE, Shaping, band_of, estimate_filter, shaping_from_wavelet
from ..survey import Survey
from .components import registry_spec
from .evaluate import simulate

__all__ = ["MIN_FIT", "SHAPING_CHOICES", "check_shaping", "predict_shaped", "resolve_shaping", "shaping_choice",
           "surface_velocity"]

#: Below this share of the data's energy explained by the estimated wavelet, the map is flagged.
MIN_FIT = 0.5

#: Below this fraction of the trained wavelet's highest frequency, the data's band is flagged.
MIN_BAND = 0.6

#: What ``--shaping`` accepts besides a wavelet file.
SHAPING_CHOICES = ("auto", "estimate", "none")

#: Half-length of the matching filter, in periods of the trained wavelet's peak.
LAG_PERIODS = 4.5


def _start_model(gathers: np.ndarray, native: Survey) -> np.ndarray:
    """A 1-D model for the first estimate: surface velocity from the first arrivals, rising with depth."""
    surface = surface_velocity(gathers, native)
    depth = np.arange(native.nz, dtype=np.float32)[:, None] * native.dx
    v = np.clip(surface + 1.2 * depth, native.vmin, native.vmax)
    return np.broadcast_to(v, (len(gathers), 1, native.nz, native.nx)).astype(np.float32)


def surface_velocity(gathers: np.ndarray, native: Survey) -> float:
    """Velocity (m/s) of the direct wave: the slope of the first breaks against offset, near the sources."""
    g = np.abs(np.asarray(gathers, dtype=np.float64))
    rx = np.array([p[1] for p in native.receivers]) * native.dx
    offsets, times = [], []
    for s, (_, sx) in enumerate(native.sources):
        trace_peak = g[:, s].max(axis=1, keepdims=True)  # (N, 1, R)
        broke = g[:, s] >= 0.05 * trace_peak.max(axis=2, keepdims=True)
        first = np.where(broke.any(axis=1), broke.argmax(axis=1), -1)  # (N, R)
        off = np.abs(rx - sx * native.dx)
        near = (off > 2 * native.dx) & (off <= 0.35 * np.ptp(rx))
        for row in first:
            ok = near & (row >= 0)
            offsets.extend(off[ok])
            times.extend(row[ok] * native.dt)
    if len(offsets) < 4:
        return 2000.0
    slope = np.polyfit(np.asarray(times), np.asarray(offsets), 1)[0]
    return float(np.clip(slope, native.vmin, native.vmax)) if np.isfinite(slope) and slope > 0 else 2000.0


def shaping_choice(shaping: Any, weights_config: Any) -> Any:
    """What ``--shaping`` means for these weights: ``"none"``, ``"estimate"``, or a wavelet file, checked.

    ``auto`` estimates the wavelet for weights that record an acquisition of OpenFWI's
    layout (the shipped foundations, weights from ``fwi pretrain``) and leaves other
    networks' input as it is.
    """
    from ..acquisition.map_ends import native_survey
    from ..errors import SurveyError

    key = str(shaping).strip().lower() if isinstance(shaping, str) else None
    recorded = weights_config is not None and weights_config.shape is not None
    if recorded:
        try:
            native_survey(weights_config.shape)
        except SurveyError:
            recorded = False
    if key == "auto":
        return "estimate" if recorded else "none"
    if key != "none" and not recorded:
        raise OptionError(f"--shaping {shaping}: the weights record no acquisition and wavelet to shape the data "
                          f"to (weights from fwi pretrain or the shipped foundations do); use --shaping none")
    return shaping


def resolve_shaping(shaping: Any, native: Survey, *, noise: float = DEFAULT_NOISE) -> Shaping | str | None:
    """``"estimate"``, ``None`` for none, or a :class:`Shaping` from a wavelet (array, or a ``.npy``/text file)."""
    if shaping is None or isinstance(shaping, Shaping):
        return shaping
    if isinstance(shaping, str):
        key = shaping.strip().lower()
        if key == "none":
            return None
        if key == "estimate":
            return "estimate"
        from pathlib import Path

        path = Path(shaping)
        if not path.is_file():
            raise OptionError(f"--shaping {shaping!r}: expected 'estimate', 'none' or a wavelet file (.npy of the "
                              f"source wavelet sampled at {native.dt:g} s from time 0)")
        wavelet = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path)
        shaping = wavelet
    wavelet = np.asarray(shaping, dtype=np.float64).ravel()
    if wavelet.size == 0 or not np.all(np.isfinite(wavelet)):
        raise DataError("shaping: the source wavelet is empty or holds NaN or infinite values")
    full = np.zeros(native.nt)
    full[:min(native.nt, wavelet.size)] = wavelet[:native.nt]
    return shaping_from_wavelet(full, native.wavelet_samples(), dt=native.dt, noise=noise)


def predict_shaped(predict: Callable[[Any], np.ndarray], gathers: Any, *, native: Survey, physics: Any = None,
                   passes: int = 2, noise: float = DEFAULT_NOISE) -> tuple[np.ndarray, Shaping]:
    """Velocity from ``gathers`` (the network's acquisition) shaped to the trained wavelet, estimated from the data.

    Args:
        predict: the network's prediction of raw gathers, ``(N, S, T, R)`` -> ``(N, 1, Z, X)`` m/s.
        gathers: raw gathers on the ``native`` acquisition.
        native: the acquisition and wavelet the network was trained with.
        physics: a built physics on ``native`` (default: ``deepwave``).
        passes: estimates made, each from the model the previous one gave.
        noise: the Wiener inverse's white-noise level.

    Returns:
        ``(velocity, shaping)``: the last prediction and the shaping it was made through; the
        prediction of the data as they are when the estimated wavelet matches the trained one
        (:meth:`Shaping.matches_trained`), so data of the trained wavelet lose nothing.
    """
    if passes < 1:
        raise OptionError(f"shaping: passes must be at least 1, got {passes}")
    data = np.asarray(gathers, dtype=np.float32)
    if not np.any(data):
        raise DataError("the gathers are zero everywhere: there is no signal to estimate a wavelet from or to "
                        "predict velocity from")
    if physics is None:
        spec = registry_spec("physics", "deepwave")
        physics = spec.load()(spec.parse_options(None), survey=native)
    max_lag = min(int(round(LAG_PERIODS / native.peak_freq / native.dt)), native.nt // 4)
    model = _start_model(data, native)
    shaping = None
    velocity = None
    for _ in range(passes):
        simulated = simulate(physics, model, device="cpu")
        taps, fit = estimate_filter(simulated, data, max_lag=max_lag)
        shaping = Shaping(filter=taps, trained=native.wavelet_samples(), dt=native.dt, noise=noise,
                          source="estimated", fit=fit)
        velocity = predict(shaping.apply(data))
        model = np.clip(velocity, native.vmin, native.vmax).astype(np.float32)
    assert velocity is not None and shaping is not None
    if shaping.matches_trained():
        # Data of the trained wavelet and scale already: shaping would only narrow their band.
        shaping.source += " (close to the trained wavelet: not applied)"
        return predict(data), shaping
    return velocity, shaping


def check_shaping(shaping: Shaping, native: Survey) -> list[str]:
    """What the shaping found that the map should not be trusted without: each a sentence naming it.

    * the estimated wavelet explains little of the data (noise, an acquisition other than
      stated, or an earth the network's map does not explain);
    * the data's band ends well below the trained wavelet's: thin layers the network would
      draw from the high frequencies cannot be seen in these data.
    """
    problems = []
    if shaping.fit is not None and shaping.fit < MIN_FIT:
        problems.append(f"the source wavelet estimated from the data explains only {100 * shaping.fit:.0f} % of "
                        f"their energy in the predicted model (below {100 * MIN_FIT:.0f} %): the data may hold "
                        f"strong noise, an acquisition other than the one stated, or geology the network does "
                        f"not answer; do not trust the map without checking it")
    _, high = shaping.band()
    _, trained_high = band_of(shaping.trained, shaping.dt)
    if high < MIN_BAND * trained_high:
        problems.append(f"the data carry frequencies up to about {high:.0f} Hz, the network was trained on data "
                        f"up to {trained_high:.0f} Hz ({native.peak_freq:g} Hz Ricker): the map is blurred "
                        f"where the missing frequencies would resolve thin layers")
    return problems

