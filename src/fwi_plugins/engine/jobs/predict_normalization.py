"""The normalisation a prediction reads its input with: stored with the model, given, or fitted on the input.

Shared by ``fwi predict`` and ``fwi refine`` (which starts from a prediction), with the checks
of the input's signal and of the scale the network reads it at.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AMPLITUDE_RATIO_LIMIT", "UNIT_RANGE_LIMIT", "check_signal", "choose_normalization", "find_normalization",
           "fit_gathers_range", "unit_range_problem"]


# -- normalisation: stored with the model, or given ------------------------------------
def _normalization_from(data: Any) -> Mapping[str, Any] | None:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if isinstance(data, Mapping):
        if "vmin" in data and "vmax" in data:
            return data
        inner = data.get("normalization")
        return _normalization_from(inner) if inner is not None else None
    return None


def find_normalization(explicit: Path | None, weights: Path | None, adapter: Path | None) -> tuple[Any, str]:
    """The normalisation the model was trained with, and where it was found.

    Looked up in order: ``--normalization``; ``normalization.json`` (or a ``config.json``/
    ``metrics.json`` with a ``normalization`` entry) in the adapter folder and the run
    folder above it, then beside the weights file; the weights file's safetensors metadata.

    Returns:
        ``(Normalization or None, description of the source)``.
    """
    from ...data import Normalization
    from ...errors import DataError

    if explicit is not None:
        if not explicit.is_file():
            raise DataError(f"--normalization {explicit}: no such file")
        try:
            found = _normalization_from(json.loads(explicit.read_text()))
        except ValueError as exc:
            raise DataError(f"--normalization {explicit}: not valid JSON ({exc})") from None
        if found is None:
            raise DataError(f"--normalization {explicit}: expected vmin, vmax, data_min, data_max (as "
                            f"Normalization.to_dict() writes them), or a 'normalization' entry holding them")
        return Normalization.from_dict(found), str(explicit)

    folders: list[Path] = []
    if adapter is not None:
        folders += [adapter, adapter.parent]
    if weights is not None:
        folders.append(weights.parent)
    for folder in folders:
        for name in ("normalization.json", "config.json", "metrics.json"):
            candidate = folder / name
            if candidate.is_file():
                with contextlib.suppress(ValueError, OSError):
                    found = _normalization_from(json.loads(candidate.read_text()))
                    if found is not None:
                        return Normalization.from_dict(found), str(candidate)
    if weights is not None and weights.suffix == ".safetensors":
        from ...pretrained import read_file

        # A damaged header is an error, not "no normalisation": the model would be fed
        # gathers scaled by the input's own range and nobody would know why.
        found = read_file(weights, why=", so its normalisation cannot be read").normalization
        if found is not None:
            return found, f"{weights} (metadata)"
    return None, ""


def fit_gathers_range(gathers: Any, batch_size: int) -> tuple[float, float]:
    """The input's own amplitude range, read batch by batch."""
    lo, hi = np.inf, -np.inf
    for start in range(0, gathers.shape[0], batch_size):
        chunk = np.asarray(gathers[start:start + batch_size], dtype=np.float32)
        lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
    return lo, hi


def check_signal(gathers: Any, batch_size: int, where: str) -> None:
    """Refuse the user's gathers when they hold NaN or infinite values, or no signal (every sample one value).

    Read batch by batch before any mapping, so a message names the input's own samples
    (sample, shot, time sample, receiver), not the mapped windows the network reads.
    """
    from ...errors import DataError

    lo, hi = np.inf, -np.inf
    bad_samples: list[int] = []
    bad_count = 0
    first_bad: tuple[int, ...] | None = None
    for start in range(0, gathers.shape[0], batch_size):
        chunk = gathers[start:start + batch_size]
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().cpu().numpy()
        chunk = np.asarray(chunk, dtype=np.float32)
        finite = np.isfinite(chunk)
        if not finite.all():
            bad = ~finite
            bad_count += int(bad.sum())
            per_sample = bad.reshape(len(chunk), -1).any(axis=1)
            bad_samples += (start + np.flatnonzero(per_sample)).tolist()
            if first_bad is None:
                index = np.unravel_index(int(np.flatnonzero(bad)[0]), chunk.shape)
                first_bad = (start + int(index[0]), *(int(i) for i in index[1:]))
            chunk = chunk[finite]
        if chunk.size:
            lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
    if first_bad is not None:
        n, s, t, r = first_bad
        listed = ", ".join(map(str, bad_samples[:5])) + (", ..." if len(bad_samples) > 5 else "")
        raise DataError(f"{where}: the gathers hold {bad_count} NaN or infinite value(s) in {len(bad_samples)} of "
                        f"{gathers.shape[0]} sample(s) ({listed}); the first is sample {n}, shot {s}, time sample "
                        f"{t}, receiver {r}. Remove those samples or replace the values (dead traces as zeros)")
    if lo == hi:
        raise DataError(f"{where}: every gathers sample is {lo:g}: the input holds no recorded signal to predict "
                        f"velocity from (an empty or failed export?)")


#: Gathers the network reads beyond this multiple of its trained input range [-1, 1] are warned about.
UNIT_RANGE_LIMIT = 1.5

#: Gathers whose peak amplitude is further than this factor from the trained one's (either way) are warned about.
AMPLITUDE_RATIO_LIMIT = 10.0


def unit_range_problem(lo: float, hi: float, norm: Any, *, shaped: bool) -> str | None:
    """A sentence naming how far the gathers the network reads are from the amplitudes it was trained on, if far.

    Far is a peak amplitude more than :data:`AMPLITUDE_RATIO_LIMIT` times above or below the
    trained data's, or a range in the network's input scale beyond :data:`UNIT_RANGE_LIMIT`
    times [-1, 1].
    """
    unit = np.asarray(norm.gathers_to_unit(np.array([lo, hi], dtype=np.float64)), dtype=np.float64)
    beyond = float(np.abs(unit).max())
    trained_peak = max(abs(float(norm.data_min)), abs(float(norm.data_max)))
    ratio = max(abs(lo), abs(hi)) / trained_peak
    if beyond <= UNIT_RANGE_LIMIT and 1 / AMPLITUDE_RATIO_LIMIT <= ratio <= AMPLITUDE_RATIO_LIMIT:
        return None
    what = "shaped to the trained wavelet" if shaped else "as given (no shaping)"
    return (f"the gathers, {what}, peak at {ratio:.3g} times the amplitude the weights were trained on (raw "
            f"{lo:.3g}..{hi:.3g} against {norm.data_min:.3g}..{norm.data_max:.3g}; {unit[0]:.3g}..{unit[1]:.3g} in "
            f"the network's input scale, trained on [-1, 1]): the map cannot be trusted"
            + ("" if shaped else "; --shaping estimate scales the data to the trained amplitude"))


def choose_normalization(explicit: Path | None, weights_config: Any, adapter: Path | None, gathers: Any,
                         batch_size: int, where: str) -> tuple[Any, str]:
    """The normalisation to predict with and where it came from (fitted on the input when the model has none)."""
    import warnings

    from ...data import Normalization

    norm, norm_source = find_normalization(explicit, weights_config.path if weights_config else None, adapter)
    if norm is None:
        lo, hi = fit_gathers_range(gathers, batch_size)
        norm = Normalization.openfwi().fit_gathers(np.array([lo, hi], dtype=np.float64))
        norm_source = f"fitted on {where}"
        warnings.warn(f"no normalisation stored with the model; gathers are scaled by the input's own "
                      f"range and velocity by {norm.vmin:g}-{norm.vmax:g} m/s (pass --normalization FILE)",
                      stacklevel=3)
    elif not norm.fitted:
        lo, hi = fit_gathers_range(gathers, batch_size)
        norm = norm.fit_gathers(np.array([lo, hi], dtype=np.float64))
        norm_source += f" (gathers range fitted on {where})"
    return norm, norm_source
