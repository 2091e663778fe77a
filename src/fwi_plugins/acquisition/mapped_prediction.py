"""Predicting through an acquisition map: user gathers read as native windows, the answer blended back."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..survey import Survey
from .mapping import AcquisitionMap
from .surveys import Grid, native_survey

__all__ = ["mapped_gathers", "predict_on_survey"]


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
        mapped = self.mapping.gathers_to_native(np.asarray(chunk))
        return mapped[start - first * w: stop - first * w]


def mapped_gathers(gathers: Any, mapping: AcquisitionMap) -> Any:
    """A lazily mapped view of ``gathers`` (read by sample slices, as :func:`engine.predict.predict` does)."""
    return _MappedGathers(gathers, mapping)


def predict_on_survey(model: Any, gathers: Any, survey: Survey, *, grid: Grid | None = None,
                      native: Survey | None = None, scale: float | None = None,
                      predict: Callable[..., np.ndarray] | None = None, **kwargs: Any) -> np.ndarray:
    """Velocity on ``grid`` (default the survey's) from gathers recorded with ``survey``.

    The gathers are mapped onto the network's native acquisition (``native``, default the
    one its pretrained weights record, else OpenFWI's), predicted window by window with
    :func:`fwi_plugins.engine.predict.predict` (``kwargs`` go to it), and blended back.

    Raises:
        SurveyError: a survey that cannot be mapped, saying why.
    """
    if predict is None:
        from ..engine.predict import predict as batched_predict

        predict = batched_predict
    if native is None:
        from ..pretrained import config_of

        config = config_of(model)
        native = native_survey(config.shape if config is not None else None)
    mapping = AcquisitionMap(survey, native, grid=grid, scale=scale)
    for note in mapping.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    if mapping.is_identity:
        return predict(model, gathers, **kwargs)
    velocity = predict(model, mapped_gathers(gathers, mapping), **kwargs)
    return mapping.velocity_to_user(velocity)
