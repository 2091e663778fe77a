"""The interpolation operators of an acquisition map.

Band-limited resampling in time (:func:`resample_matrix`), exact sample shifts
(:func:`shift_matrix`), and linear interpolation along a line (:func:`linear_weights`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["linear_weights", "resample_matrix", "shift_matrix"]


def resample_matrix(dt_in: float, nt_in: int, times: Any, *, dt_out: float | None = None,
                    rolloff: float = 0.9, zeros: int = 12, attenuation: float = 80.0) -> Any:
    """The band-limited interpolation operator from ``nt_in`` samples at ``dt_in`` to ``times`` (s).

    A Kaiser-windowed sinc whose cut-off is ``rolloff`` times the lower of the input's and
    the output's Nyquist frequency (the output's taken from ``dt_out``, default the step of
    ``times``), so downsampling is anti-aliased and upsampling adds nothing above the
    input's band. ``zeros`` sinc zero crossings are kept on each side; the window is
    designed for ``attenuation`` dB (``scipy.signal.kaiser_beta``). Times whose kernel
    reaches past the recording see zeros there.

    Returns:
        a ``scipy.sparse`` CSR matrix ``(len(times), nt_in)``: ``resampled = M @ trace``.
    """
    from scipy import sparse, signal

    times = np.asarray(times, dtype=np.float64)
    if dt_out is None:
        dt_out = float(times[1] - times[0]) if times.size > 1 else dt_in
    cutoff = rolloff * 0.5 / max(dt_in, dt_out)  # Hz
    half = zeros / (2.0 * cutoff)  # seconds either side
    beta = signal.kaiser_beta(attenuation)
    span = int(np.ceil(half / dt_in))
    centre = np.floor(times / dt_in).astype(np.int64)
    offsets = np.arange(-span, span + 2)
    cols = centre[:, None] + offsets[None, :]
    lag = times[:, None] - cols * dt_in
    inside = (cols >= 0) & (cols < nt_in) & (np.abs(lag) <= half)
    ratio = np.clip(lag / half, -1.0, 1.0)
    taper = np.i0(beta * np.sqrt(1.0 - ratio ** 2)) / np.i0(beta)
    values = 2.0 * cutoff * dt_in * np.sinc(2.0 * cutoff * lag) * taper
    rows = np.broadcast_to(np.arange(times.size)[:, None], cols.shape)
    return sparse.csr_matrix((values[inside], (rows[inside], cols[inside])), shape=(times.size, nt_in))


def shift_matrix(nt_in: int, nt_out: int, start: int) -> Any:
    """Exact sample selection ``out[j] = in[j + start]`` (zeros off the recording)."""
    from scipy import sparse

    src = np.arange(nt_out) + start
    keep = (src >= 0) & (src < nt_in)
    return sparse.csr_matrix((np.ones(int(keep.sum())), (np.flatnonzero(keep), src[keep])), shape=(nt_out, nt_in))


def linear_weights(positions: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Dense linear-interpolation weights ``(len(at), len(positions))``; ``at`` is clamped to the ends."""
    order = np.argsort(positions, kind="stable")
    sorted_pos = positions[order]
    out = np.zeros((at.size, positions.size))
    if positions.size == 1:
        out[:, 0] = 1.0
        return out
    at = np.clip(at, sorted_pos[0], sorted_pos[-1])
    hi = np.clip(np.searchsorted(sorted_pos, at, side="right"), 1, positions.size - 1)
    lo = hi - 1
    gap = sorted_pos[hi] - sorted_pos[lo]
    w = np.where(gap > 0, (at - sorted_pos[lo]) / np.where(gap > 0, gap, 1.0), 0.0)
    rows = np.arange(at.size)
    np.add.at(out, (rows, order[lo]), 1.0 - w)
    np.add.at(out, (rows, order[hi]), w)
    return out
