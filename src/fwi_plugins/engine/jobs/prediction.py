"""Velocity from gathers with the model a command names: the middle of ``fwi predict`` and ``fwi refine``.

:func:`weights_source` checks what ``--pretrained``/``--weights`` ask for before any data is
read; :func:`acquisition_map` plans how the input's acquisition maps onto the one the weights
were trained for; :func:`predict_velocity` builds the model, finds its normalisation
(:mod:`.predict_normalization`), predicts through the map
(:func:`fwi_plugins.acquisition.predict_through_map`) and records the provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..components import registry_spec
from ..inference import load_model, predict
from .predict_normalization import check_signal, choose_normalization, fit_gathers_range, unit_range_problem

__all__ = ["acquisition_map", "predict_velocity", "weights_source"]


def weights_source(backbone: str, pretrained: str | None, weights: Path | None,
                    options: Mapping[str, Any]) -> tuple[str, Any]:
    """What ``--pretrained``/``--weights`` ask for, checked against ``options`` before any data is read.

    Returns:
        ``(pretrained value, the weights' PretrainedConfig or None for none)``.
    """
    import warnings

    from ...errors import DataError, OptionError
    from ...pretrained import NONE, backbone_options

    spec = registry_spec("backbone", backbone)
    if weights is not None and pretrained is not None:
        raise OptionError(f"--pretrained {pretrained} and --weights {weights} both name the weights; give one")
    if weights is not None and not weights.is_file():
        raise DataError(f"weights file {weights} does not exist (expected a .safetensors file)")
    source = str(weights) if weights is not None else (pretrained or "default")
    if source.strip().lower() == "default" and not spec.pretrained:
        raise OptionError(f"--pretrained: backbone {backbone!r} ships no pretrained weights; pass --weights "
                          f"FILE.safetensors (from fwi pretrain), or --pretrained none for an untrained network")
    _, config = backbone_options(spec, options, source)  # an option the weights fix fails here, named
    if source.strip().lower() == NONE:
        warnings.warn(f"--pretrained none: {backbone} starts from random weights (untrained), so its "
                      f"predictions are not a velocity estimate", UserWarning, stacklevel=2)
    return source, config


def acquisition_map(gathers_shape: tuple[int, ...], weights_config: Any, survey: Any, grid: Any,
                    where: str, *, shaped: bool = False) -> Any:
    """How the input's acquisition is mapped onto the one the weights were trained for.

    Returns ``None`` when the weights record no acquisition (the network then reads the
    gathers as they are). Gathers of the native layout without a survey are taken as
    recorded with the native acquisition; any other layout needs its survey (positions and
    sample interval), from the input's coordinates or headers or from ``--survey``.

    Raises:
        DataError: no survey for gathers of another layout, or gathers that disagree with it.
        SurveyError: a survey that cannot be mapped, saying why.
    """
    from ...acquisition import AcquisitionMap, native_survey
    from ...errors import DataError, SurveyError

    native_shape = weights_config.shape if weights_config is not None else None
    if native_shape is None:
        return None
    native = native_survey(native_shape, weights_config.wavelet)
    _, shots, nt, receivers = gathers_shape
    layout = (native.n_shots, native.nt, native.n_receivers)
    if survey is None:
        if (shots, nt, receivers) != layout:
            wrong = [f"{have} {what}, not {want}" for what, have, want in (
                ("shots", shots, native.n_shots), ("time samples", nt, native.nt),
                ("receivers", receivers, native.n_receivers)) if have != want]
            raise DataError(f"{where}: the gathers have {'; '.join(wrong)}: the weights {weights_config.label} were "
                            f"trained for {native.n_shots} shots x {native.nt} time samples x {native.n_receivers} "
                            f"receivers, and the input carries no acquisition to map it from (source and receiver "
                            f"positions, sample interval). Give --survey FILE.toml, or an input with them (netCDF "
                            f"source_x/receiver_x/time coordinates, SEG-Y trace headers)")
        survey = native
    if (shots, nt, receivers) != (survey.n_shots, survey.nt, survey.n_receivers):
        raise DataError(f"{where}: gathers of {shots} shots x {nt} time samples x {receivers} receivers, but its "
                        f"survey describes {survey.n_shots} x {survey.nt} x {survey.n_receivers}")
    try:
        mapping = AcquisitionMap(survey, native, grid=grid, shaped=shaped)
    except SurveyError as exc:
        raise SurveyError(f"{where}: {exc}") from None
    return mapping


def predict_velocity(gathers: Any, *, backbone: str, options: Mapping[str, Any], source: str, weights_config: Any,
                     adapter: Path | None, normalization: Path | None, shape: Any, batch_size: int, device: Any,
                     progress: bool, where: str, survey: Any = None, grid: Any = None,
                     shaping: Any = "none", path: Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Velocity (m/s) from ``gathers`` with the model the command's options name, and its provenance.

    Gathers recorded with ``survey`` are mapped onto the acquisition the weights were
    trained for and the prediction back onto ``grid`` (see :mod:`fwi_plugins.acquisition`).
    ``shaping`` (see :func:`shaping_choice`) turns the data's wavelet and amplitude into the
    trained ones first (:mod:`fwi_plugins.shaping`); what it found is checked and recorded.
    The normalisation is the one the model was trained with (see :func:`find_normalization`);
    without one, the gathers' own range is used, with a warning. ``path``, the input file,
    is named in the messages about its values.
    """
    from ...acquisition import mapped_gathers, native_survey, predict_through_map
    from ..shaped import shaping_choice

    shaping = shaping_choice(shaping, weights_config)
    shaped = not (isinstance(shaping, str) and shaping.strip().lower() == "none")
    named = f"{where} {path}" if path is not None else where
    mapping = _checked_mapping(gathers, weights_config, survey, grid, where, named=named, shaped=shaped,
                               batch_size=batch_size)
    if mapping is not None:
        shape = weights_config.shape
    native_input = gathers if mapping is None else mapped_gathers(gathers, mapping)
    norm, norm_source = choose_normalization(normalization, weights_config, adapter, native_input, batch_size, where)
    model = load_model(backbone, options, adapter_dir=adapter, pretrained=source, shape=shape)
    read: dict[str, tuple[float, float]] = {}

    def run(net: Any, data: Any) -> np.ndarray:
        # The range of what the network reads last (shaped, when shaping runs), checked below.
        read["range"] = fit_gathers_range(data, batch_size)
        return predict(net, data, normalization=norm, batch_size=batch_size, device=device, progress=progress)

    native = native_survey(weights_config.shape, weights_config.wavelet) if shaped else None
    velocity, applied = predict_through_map(model, gathers, mapping, shaping=shaping, native=native, predict=run)
    _warn_about_reading(applied, native, read.get("range"), norm, where=where, named=named)
    provenance = {
        "backbone": backbone,
        "backbone_options": _backbone_options(backbone, options, source),
        "pretrained": source,
        "weights": str(weights_config.path) if weights_config else None,
        "adapter": str(adapter) if adapter else None,
        "normalization": norm.to_dict(),
        "normalization_source": norm_source,
        "acquisition": mapping.describe() if mapping is not None else None,
        "shaping": applied.describe() if applied is not None else None,
    }
    return velocity, {k: v for k, v in provenance.items() if v is not None}


def _checked_mapping(gathers: Any, weights_config: Any, survey: Any, grid: Any, where: str, *, named: str,
                     shaped: bool, batch_size: int) -> Any:
    """The input's acquisition map after the checks of its signal and first breaks; ``None`` for none or identity."""
    import warnings

    from ...acquisition.first_breaks import check_first_breaks

    mapping = acquisition_map(tuple(gathers.shape), weights_config, survey, grid, where, shaped=shaped)
    check_signal(gathers, batch_size, named)
    if mapping is not None:
        check_first_breaks(gathers, mapping.survey, named)
    if mapping is None or mapping.is_identity:
        return None
    for note in mapping.notes:
        warnings.warn(f"{where}: {note}", UserWarning, stacklevel=3)
    return mapping


def _warn_about_reading(applied: Any, native: Any, read_range: tuple[float, float] | None, norm: Any, *, where: str,
                        named: str) -> None:
    """Warn of a shaping whose result looks wrong, or of input read far outside the network's trained scale."""
    import warnings

    from ..shaped import check_shaping

    if applied is not None:
        for problem in check_shaping(applied, native):
            warnings.warn(f"{where}: {problem}", UserWarning, stacklevel=3)
    if read_range is not None and norm.fitted:
        amplitude = unit_range_problem(*read_range, norm, shaped=applied is not None)
        if amplitude is not None:
            warnings.warn(f"{named}: {amplitude}", UserWarning, stacklevel=3)


def _backbone_options(backbone: str, options: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The backbone's complete options, as the weights fix them and the command repeats them."""
    from ...options import to_dict
    from ...pretrained import backbone_options

    spec = registry_spec("backbone", backbone)
    return to_dict(spec.parse_options(backbone_options(spec, options, source)[0]))
