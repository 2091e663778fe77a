"""The built-in data misfits: pure torch functions of gathers shaped ``(..., time, receiver)``.

Registered by :mod:`fwi_plugins.builtins.misfits` (hook ``fwi_misfits``); a physics gets one
by name through :func:`fwi_plugins.physics.get_misfit`. torch is imported inside the
functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["MISFITS", "envelope", "misfit_envelope", "misfit_l2", "misfit_ncc", "misfit_trace_l2"]

# Guards divisions by a trace's energy: silent traces (before the first arrival, muted
# receivers) must give a zero gradient rather than NaN.
_EPS = 1e-12


def _check_pair(predicted: torch.Tensor, observed: torch.Tensor) -> None:
    if tuple(predicted.shape) != tuple(observed.shape):
        raise DataError(f"misfit: predicted gathers have shape {tuple(predicted.shape)} but observed "
                        f"gathers have shape {tuple(observed.shape)}")
    if predicted.ndim < 2:
        raise DataError(f"misfit: gathers need (..., time, receiver) dimensions, got shape {tuple(predicted.shape)}")


def misfit_l2(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the raw amplitudes.

    Args:
        predicted: simulated gathers ``(..., T, R)``.
        observed: recorded gathers of the same shape.

    Returns:
        A scalar tensor.
    """
    _check_pair(predicted, observed)
    return (predicted - observed).square().mean()


def _unit_traces(data: torch.Tensor) -> torch.Tensor:
    norm = data.square().sum(dim=-2, keepdim=True).add(_EPS).sqrt()
    return data / norm


def misfit_trace_l2(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """L2 of traces each scaled to unit energy: insensitive to source strength and spreading.

    Returns:
        A scalar tensor: the squared distance of unit traces, averaged over traces (0..4).
    """
    _check_pair(predicted, observed)
    diff = _unit_traces(predicted) - _unit_traces(observed)
    return diff.square().sum(dim=-2).mean()


def misfit_ncc(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """One minus the normalised zero-lag cross-correlation of each trace, averaged.

    Only the shape of each trace matters, not its amplitude (the "global correlation"
    misfit), which makes it robust to an unknown source scaling and to amplitude errors
    of an acoustic approximation.

    Returns:
        A scalar tensor in ``[0, 2]``; 0 when every trace matches up to a positive scale.
    """
    _check_pair(predicted, observed)
    corr = (_unit_traces(predicted) * _unit_traces(observed)).sum(dim=-2)
    return (1.0 - corr).mean()


def envelope(data: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Instantaneous amplitude ``sqrt(d^2 + H(d)^2)`` via the analytic signal along ``dim``.

    The small floor inside the square root keeps the gradient finite where a trace is silent.
    """
    import torch

    n = data.shape[dim]
    spectrum = torch.fft.fft(data, dim=dim)
    # The analytic signal keeps DC (and Nyquist) once and doubles positive frequencies.
    weights = torch.zeros(n, dtype=data.dtype, device=data.device)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[n // 2] = 1.0
        weights[1 : n // 2] = 2.0
    else:
        weights[1 : (n + 1) // 2] = 2.0
    shape = [1] * data.ndim
    shape[dim] = n
    analytic = torch.fft.ifft(spectrum * weights.view(shape), dim=dim)
    return (analytic.real.square() + analytic.imag.square() + _EPS).sqrt()


def misfit_envelope(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the Hilbert envelopes.

    The envelope carries the low-frequency content of the data even when the data lack
    it, so this misfit is far less prone to cycle skipping than L2 on waveforms.

    Returns:
        A scalar tensor.
    """
    _check_pair(predicted, observed)
    return (envelope(predicted) - envelope(observed)).square().mean()


MISFITS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l2": misfit_l2,
    "trace-l2": misfit_trace_l2,
    "ncc": misfit_ncc,
    "envelope": misfit_envelope,
}
