"""Predicting through an acquisition map: user gathers read as native windows, the answer blended back."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DataError
from ..survey import Survey
from .mapping import AcquisitionMap
from .map_ends import Grid, native_survey

__all__ = ["mapped_gathers", "predict_on_survey", "predict_through_map", "shaped_native_prediction"]


class _MappedGathers:
    """User gathers seen as native windows: ``(N x windows, S_n, T_n, R_n)``, read by sample slices."""

    def __init__(self, gathers: Any, mapping: AcquisitionMap) -> None:
        self.gathers, self.mapping = gathers, mapping
        w = mapping.n_windows
        native = mapping.native
        self.shape = (int(gathers.shape[0]) * w, native.n_shots, native.nt, native.n_receivers)

    def __getitem__(self, item: slice) -> np.ndarray:
        start, stop, _ = item.indices(self.shape[0])
        w = self.mapping.n_windows
        first, last = start // w, (stop - 1) // w + 1
        chunk = self.gathers[first:last]
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().cpu().numpy()
        chunk = np.asarray(chunk)
        finite = np.isfinite(chunk)
        if not finite.all():
            # Mapping spreads one NaN over whole windows: name the user's own samples, not the windows.
            bad = (~finite).reshape(len(chunk), -1)
            samples = (first + np.flatnonzero(bad.any(axis=1))).tolist()
            raise DataError(f"gathers sample(s) {', '.join(map(str, samples))} hold {int(bad.sum())} NaN or "
                            f"infinite value(s)")
        mapped = self.mapping.gathers_to_native(chunk)
        return mapped[start - first * w: stop - first * w]


def mapped_gathers(gathers: Any, mapping: AcquisitionMap) -> Any:
    """A lazily mapped view of ``gathers`` (read by sample slices, as :func:`engine.predict.predict` does)."""
    return _MappedGathers(gathers, mapping)


def _native_of(model: Any, native: Survey | None) -> Survey:
    if native is not None:
        return native
    from ..pretrained import config_of

    config = config_of(model)
    return native_survey(config.shape, config.wavelet) if config is not None else native_survey()


def shaped_native_prediction(model: Any, gathers: Any, *, shaping: Any, native: Survey | None = None,
                             physics: Any = None, noise: float | None = None,
                             predict: Callable[..., np.ndarray] | None = None,
                             **kwargs: Any) -> tuple[np.ndarray, Any]:
    """Velocity from gathers of the network's own acquisition, shaped first (see :mod:`fwi_plugins.shaping`).

    Returns:
        ``(velocity, shaping)``: the prediction and the :class:`~fwi_plugins.shaping.Shaping`
        applied (``None`` for ``shaping="none"``).
    """
    from ..engine.shaped import predict_shaped, resolve_shaping, shaping_choice
    from ..pretrained import config_of
    from ..shaping import DEFAULT_NOISE

    if predict is None:
        from ..engine.inference import predict as batched_predict

        predict = batched_predict
    if native is None or (isinstance(shaping, str) and shaping.strip().lower() == "auto"):
        shaping = shaping_choice(shaping, config_of(model))
    if isinstance(shaping, str) and shaping.strip().lower() == "none":
        return predict(model, gathers, **kwargs), None
    native = _native_of(model, native)
    noise = DEFAULT_NOISE if noise is None else noise
    resolved = resolve_shaping(shaping, native, noise=noise)
    if resolved is None:
        return predict(model, gathers, **kwargs), None
    data = np.asarray(gathers[0:gathers.shape[0]] if not isinstance(gathers, np.ndarray) else gathers)
    if isinstance(resolved, str):  # "estimate"
        return predict_shaped(lambda g: predict(model, g, **kwargs), data, native=native, physics=physics,
                              noise=noise)
    return predict(model, resolved.apply(data), **kwargs), resolved


def predict_on_survey(model: Any, gathers: Any, survey: Survey, *, grid: Grid | None = None,
                      native: Survey | None = None, scale: float | None = None, shaping: Any = "auto",
                      physics: Any = None, shaping_noise: float | None = None,
                      predict: Callable[..., np.ndarray] | None = None, **kwargs: Any) -> np.ndarray:
    """Velocity on ``grid`` (default the survey's) from gathers recorded with ``survey``.

    The gathers are mapped onto the network's native acquisition (``native``, default the
    one its pretrained weights record, else OpenFWI's), shaped to its wavelet when
    ``shaping`` asks (see :func:`shaped_native_prediction`), predicted window by window with
    :func:`fwi_plugins.engine.inference.predict` (``kwargs`` go to it), and blended back.

    Raises:
        SurveyError: a survey that cannot be mapped, saying why.
    """
    from ..engine.shaped import shaping_choice
    from ..pretrained import config_of

    if native is None or (isinstance(shaping, str) and shaping.strip().lower() == "auto"):
        shaping = shaping_choice(shaping, config_of(model))
    native = _native_of(model, native)
    shaped = not (isinstance(shaping, str) and shaping.strip().lower() == "none")
    mapping = AcquisitionMap(survey, native, grid=grid, scale=scale, shaped=shaped)
    for note in mapping.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    velocity, _ = predict_through_map(model, gathers, mapping, shaping=shaping, native=native, physics=physics,
                                      noise=shaping_noise, predict=predict, **kwargs)
    return velocity


def predict_through_map(model: Any, gathers: Any, mapping: AcquisitionMap | None, *, shaping: Any,
                        native: Survey | None = None, physics: Any = None, noise: float | None = None,
                        predict: Callable[..., np.ndarray] | None = None,
                        **kwargs: Any) -> tuple[np.ndarray, Any]:
    """Velocity on the user's grid from their gathers: mapped to the native acquisition, shaped, predicted, mapped back.

    The one path of mapped prediction, for :func:`predict_on_survey` and the ``fwi predict``
    job alike. ``mapping`` ``None`` (or an identity map) predicts the gathers as they are;
    ``shaping``, ``native``, ``physics``, ``noise``, ``predict`` and ``kwargs`` as
    :func:`shaped_native_prediction` takes them.

    Returns:
        ``(velocity, shaping)``: the prediction on the user's grid and the shaping applied
        (``None`` for none).
    """
    if mapping is not None and mapping.is_identity:
        mapping = None
    source = gathers if mapping is None else mapped_gathers(gathers, mapping)
    velocity, applied = shaped_native_prediction(model, source, shaping=shaping, native=native, physics=physics,
                                                 noise=noise, predict=predict, **kwargs)
    return (velocity if mapping is None else mapping.velocity_to_user(velocity)), applied
