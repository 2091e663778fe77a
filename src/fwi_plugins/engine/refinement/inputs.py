"""What :func:`fwi_plugins.engine.refinement.refine.refine` checks before it simulates anything.

Each check names the argument it refuses (``refine: mute must be ...``), in the order the
arguments are documented: the data and their shapes, the velocity bounds and step size, the
update rule and its shaping, the time limit, then the iterations and frequency stages.
:func:`resolve_shaping` turns the shaping left at ``None`` into the rule's own
(:data:`SHAPING_DEFAULTS`); ``fwi refine`` records what it resolves to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...errors import DataError, OptionError
from .terms import Preconditioner

__all__ = ["SHAPING_DEFAULTS", "STEPS", "as_tensor", "check_data", "check_shaping", "check_time_limit",
           "pick_device", "resolve_shaping", "stages", "velocity_bounds"]

#: The update rules :func:`~fwi_plugins.engine.refinement.refine.refine` offers.
STEPS = ("normalized", "adam", "lbfgs")

#: What ``mute``, ``smooth``, ``depth_power`` and ``tv`` left at ``None`` mean for each rule:
#: for L-BFGS, the combination that raised SSIM and lowered MAE most from a network's
#: prediction on generated held-out maps; the descent rules keep their raw gradient.
SHAPING_DEFAULTS: dict[str, dict[str, float]] = {
    "lbfgs": {"mute": 3, "smooth": 2.0, "depth_power": 1.0, "tv": 0.02},
    "normalized": {"mute": 0, "smooth": 0.0, "depth_power": 0.0, "tv": 0.0},
    "adam": {"mute": 0, "smooth": 0.0, "depth_power": 0.0, "tv": 0.0},
}


def resolve_shaping(step: str, *, mute: int | None = None, smooth: float | None = None,
                    depth_power: float | None = None, tv: float | None = None) -> dict[str, Any]:
    """``mute``, ``smooth``, ``depth_power`` and ``tv``, each ``None`` replaced by ``step``'s :data:`SHAPING_DEFAULTS`.

    Raises:
        OptionError: ``step`` is not one of :data:`STEPS`.
    """
    if step not in STEPS:
        raise OptionError(f"refine: step {step!r} is not known; expected one of {', '.join(STEPS)}")
    defaults = SHAPING_DEFAULTS[step]
    return {"mute": int(defaults["mute"]) if mute is None else mute,
            "smooth": defaults["smooth"] if smooth is None else smooth,
            "depth_power": defaults["depth_power"] if depth_power is None else depth_power,
            "tv": defaults["tv"] if tv is None else tv}


def pick_device(device: str | torch.device | None, initial: Any) -> torch.device:
    """``"auto"``: CUDA when present; ``None``: the initial tensor's device (CPU for numpy)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device is None:
        device = initial.device if isinstance(initial, torch.Tensor) else "cpu"
    return torch.device(device)


def as_tensor(value: Any, name: str, ndim: int, device: torch.device) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Float tensor with ``ndim`` dimensions (leading ones added), and the caller's original shape."""
    tensor = value.detach() if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
    shape = tuple(tensor.shape)
    if not ndim - 2 <= tensor.ndim <= ndim:
        raise DataError(f"refine: {name} has shape {shape}; expected {ndim} dimensions")
    while tensor.ndim < ndim:
        tensor = tensor.unsqueeze(0)
    if not torch.is_floating_point(tensor):
        raise DataError(f"refine: {name} must hold floating-point values, got {tensor.dtype}")
    return tensor.to(device=device, dtype=torch.float32), shape


def check_data(initial: Any, observed: Any, survey: Any,
               device: torch.device) -> tuple[torch.Tensor, tuple[int, ...], torch.Tensor]:
    """The starting models ``(N, 1, Z, X)``, the caller's shape of them, and the gathers ``(N, S, T, R)``."""
    v0, original_shape = as_tensor(initial, "initial velocity", 4, device)
    d_obs, _ = as_tensor(observed, "observed gathers", 4, device)
    expected = (survey.n_shots, survey.nt, survey.n_receivers)
    if tuple(d_obs.shape[1:]) != expected:
        raise DataError(f"refine: observed gathers have (shot, time, receiver) = {tuple(d_obs.shape[1:])}, "
                        f"the survey expects {expected}")
    if v0.shape[1] != 1:
        raise DataError(f"refine: initial velocity must have one channel, shape {tuple(v0.shape)}")
    if v0.shape[0] != d_obs.shape[0]:
        raise DataError(f"refine: {v0.shape[0]} initial model(s) but {d_obs.shape[0]} set(s) of observed gathers")
    return v0, original_shape, d_obs


def velocity_bounds(survey: Any, vmin: float | None, vmax: float | None, lr: float) -> tuple[float, float]:
    """``(vmin, vmax)`` in m/s, the survey's where not given; checked together with the step size."""
    lo = float(survey.vmin if vmin is None else vmin)
    hi = float(survey.vmax if vmax is None else vmax)
    if not 0 < lo < hi:
        raise OptionError(f"refine: velocity bounds must satisfy 0 < vmin < vmax, got {lo:g} and {hi:g}")
    if not lr > 0:
        raise OptionError(f"refine: lr must be positive, got {lr}")
    return lo, hi


def check_shaping(shaping: dict[str, Any], prior: float, nz: int) -> Preconditioner:
    """Check the resolved shaping and ``prior`` for models of ``nz`` rows; the preconditioner they make."""
    mute = shaping["mute"]
    for name, value in (("smooth", shaping["smooth"]), ("depth_power", shaping["depth_power"]), ("prior", prior),
                        ("tv", shaping["tv"])):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise OptionError(f"refine: {name} must be a finite number >= 0, got {value!r}")
    if isinstance(mute, bool) or not isinstance(mute, int) or not 0 <= mute < nz:
        raise OptionError(f"refine: mute must be a whole number of rows >= 0 and below the model's "
                          f"{nz}, got {mute!r}")
    return Preconditioner(mute=mute, depth_power=float(shaping["depth_power"]), smooth=float(shaping["smooth"]))


def check_time_limit(time_limit: float | None) -> None:
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise OptionError(f"refine: time_limit must be a positive number of seconds or None, got {time_limit!r}")


def stages(iterations: int, frequencies: Sequence[float] | None) -> list[tuple[float | None, int]]:
    """``(cutoff_hz or None, iterations)`` per frequency stage, low to high; ``None`` is the full band."""
    if iterations < 1:
        raise OptionError(f"refine: iterations must be at least 1, got {iterations}")
    if not frequencies:
        return [(None, iterations)]
    cutoffs = [float(f) for f in frequencies]
    if any(f <= 0 for f in cutoffs):
        raise OptionError(f"refine: frequencies must be positive cutoffs in Hz, got {list(frequencies)}")
    if len(cutoffs) > iterations:
        raise OptionError(f"refine: {len(cutoffs)} frequency stages need at least as many iterations, "
                          f"got {iterations}")
    cutoffs.sort()
    base, extra = divmod(iterations, len(cutoffs))
    # The remainder goes to the last (widest-band) stage, the one that matters for the result.
    return [(f, base + (extra if i == len(cutoffs) - 1 else 0)) for i, f in enumerate(cutoffs)]
