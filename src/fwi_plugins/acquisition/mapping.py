"""The acquisition map: how a user's survey is read through a network's native acquisition, and back.

:mod:`fwi_plugins.acquisition` explains what scales and how; :class:`AcquisitionMap` holds the plan
(the scale, the windows along the line, the time operator) and applies it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..errors import DataError, SurveyError
from ..survey import Survey
from .resampling import linear_weights, resample_matrix, shift_matrix
from .map_ends import Grid

__all__ = ["FREQUENCY_TOLERANCE", "AcquisitionMap"]

#: The ratio of equivalent to trained peak frequency beyond which a warning is given.
FREQUENCY_TOLERANCE = 1.5

#: The least Nyquist frequency of the mapped recording, in trained peak frequencies: a Ricker
#: keeps a tenth of its peak amplitude up to about 2.2 times its peak frequency.
MIN_NYQUIST_PEAKS = 2.0


@dataclasses.dataclass(frozen=True)
class _Window:
    start: float  # metres: the user's x of native column 0
    shots: tuple[tuple[tuple[int, np.ndarray], ...], ...]  # per native shot: (user shot, (R_n, R_u) weights)


def _scale_bounds(survey: Survey, native: Survey, grid: Grid, *, user_span: float, native_width: float,
                  shaped: bool = False) -> dict[str, tuple[float, str]]:
    """The bounds the survey puts on the scale, each with why: ``depth`` below, ``recording`` and ``line`` above.

    Shaped data carry the network's wavelet whatever their own delay, so then the whole
    recording counts; otherwise the time after the wavelet's peak does.
    """
    native_depth = (native.nz - 1) * native.dx
    native_listen = (native.nt - 1) * native.dt - (0.0 if shaped else native.delay)
    user_depth = (grid.nz - 1) * grid.dx
    user_listen = (survey.nt - 1) * survey.dt - (0.0 if shaped else survey.delay) + 0.5 * survey.dt
    after = "" if shaped else " after the wavelet's peak"
    return {
        "depth": (user_depth / native_depth,
                  f"the grid is {user_depth:g} m deep and the network sees {native_depth:g} m x scale"),
        "recording": (user_listen / native_listen,
                      f"the recording holds {user_listen:g} s{after} and "
                      f"the network reads "
                      f"{native_listen:g} s x scale"),
        "line": (user_span / native_width,
                 f"the receivers span {user_span:g} m and the network's line is {native_width:g} m x scale"),
    }


def _checked_scale(bounds: dict[str, tuple[float, str]], scale: float | None, *, survey: Survey,
                   native: Survey, shaped: bool = False) -> float:
    """The scale: the wavelet's (native over survey peak frequency; 1 for shaped data, whose wavelet
    shaping sets) moved into the bounds, or ``scale`` checked."""
    lo, hi = bounds["depth"][0], min(bounds["recording"][0], bounds["line"][0])
    if scale is None:
        if lo > hi * (1 + 1e-9):
            limit = "recording" if bounds["recording"][0] <= bounds["line"][0] else "line"
            raise SurveyError(
                f"the survey cannot be mapped onto the network's acquisition: {bounds['depth'][1]}, so the "
                f"scale must be at least {lo:.3g}, but {bounds[limit][1]}, so it must be at most "
                f"{bounds[limit][0]:.3g}. "
                + ("Depths the recording cannot reach are not predicted: ask for a shallower grid "
                   "(--grid) or give a longer recording" if limit == "recording" else
                   "Ask for a shallower grid (--grid) or give a wider receiver line"))
        preferred = 1.0 if shaped else native.peak_freq / survey.peak_freq
        return float(min(max(preferred, lo), hi))
    if not (math.isfinite(scale) and scale > 0):
        raise SurveyError(f"scale {scale!r}: expected a positive number")
    for name, (bound, why) in bounds.items():
        fails = scale < bound * (1 - 1e-9) if name == "depth" else scale > bound * (1 + 1e-9)
        if fails:
            raise SurveyError(f"scale {scale:g} does not map the survey: {why} "
                              f"(needs {'at least' if name == 'depth' else 'at most'} {bound:.3g})")
    return float(scale)


class AcquisitionMap:
    """How a user's survey is read by a network of a native acquisition, and its answer written back.

    Args:
        survey: the user's acquisition (positions in grid cells of ``survey.dx`` metres).
        native: the network's acquisition (:func:`native_survey`).
        grid: the velocity grid wanted (default: the survey's).
        scale: the stretch ``a`` (user metres per native metre); default chosen as the
            module's documentation explains. A given scale is checked, not moved.
        overlap: the least overlap of neighbouring windows, as a fraction of a window.
        shaped: the mapped gathers will be shaped to the network's wavelet (:mod:`fwi_plugins.shaping`):
            the scale then follows the geometry alone (the least stretch that fits, 1 where
            possible) and time is mapped from the recording's start, the wavelet's own delay
            being the shaping's to remove.

    Raises:
        SurveyError: the survey cannot be mapped; the message says which requirement fails.
    """

    def __init__(self, survey: Survey, native: Survey, *, grid: Grid | None = None, scale: float | None = None,
                 overlap: float = 0.5, shaped: bool = False) -> None:
        self.survey, self.native, self.shaped = survey, native, shaped
        self.grid = grid or Grid(nz=survey.nz, nx=survey.nx, dx=survey.dx)
        self.notes: list[str] = []
        m = survey.dx
        self.source_x = np.array([p[1] for p in survey.sources]) * m
        self.receiver_x = np.array([p[1] for p in survey.receivers]) * m
        source_z = np.array([p[0] for p in survey.sources]) * m
        receiver_z = np.array([p[0] for p in survey.receivers]) * m
        n_dx = native.dx
        self.native_receiver_x = np.array([p[1] for p in native.receivers]) * n_dx
        self.native_source_x = np.array([p[1] for p in native.sources]) * n_dx
        native_width = float(np.ptp(self.native_receiver_x))
        user_span = float(np.ptp(self.receiver_x))
        if survey.n_receivers < 2:
            raise SurveyError("the survey has one receiver; mapping onto a receiver line needs at least two")
        bounds = _scale_bounds(survey, native, self.grid, user_span=user_span, native_width=native_width,
                               shaped=shaped)
        self.scale = _checked_scale(bounds, scale, survey=survey, native=native, shaped=shaped)
        equivalent = survey.peak_freq * self.scale
        if not shaped and not 1 / FREQUENCY_TOLERANCE <= equivalent / native.peak_freq <= FREQUENCY_TOLERANCE:
            self.notes.append(f"the survey's {survey.peak_freq:g} Hz wavelet reads as {equivalent:.3g} Hz at scale "
                              f"{self.scale:.3g}; the network was trained on {native.peak_freq:g} Hz")
        self._check_surface_acquisition(source_z, receiver_z)
        self._check_sampling()
        self.window_width = native_width * self.scale
        self.windows = tuple(self._plan_window(start) for start in self._window_starts(user_span, overlap))
        self._check_grid_coverage()
        self.time_matrix = self._time_matrix()

    # -- planning ---------------------------------------------------------------------
    def _check_surface_acquisition(self, source_z: np.ndarray, receiver_z: np.ndarray) -> None:
        """Sources and receivers within a native cell of the surface (the network knows surface acquisition)."""
        surface = self.scale * self.native.dx
        for label, depths in (("source", source_z), ("receiver", receiver_z)):
            if depths.max(initial=0.0) > surface + 1e-9:
                i = int(np.argmax(depths))
                raise SurveyError(f"{label} {i} is {depths[i]:g} m below the surface; the network was trained on "
                                  f"surface acquisition (within {surface:g} m at scale {self.scale:.3g})")

    def _check_sampling(self) -> None:
        """The recording, stretched by the scale, must carry the trained wavelet's band.

        A time axis stated in the wrong unit (milliseconds labelled seconds) gives a sample
        interval a thousand times too long; mapped, such gathers hold nothing the network reads.
        """
        nyquist = self.scale * 0.5 / self.survey.dt  # Hz, on the network's time axis
        needed = MIN_NYQUIST_PEAKS * self.native.peak_freq
        if nyquist < needed:
            raise SurveyError(f"the recording is sampled every {self.survey.dt:g} s: at scale {self.scale:.3g} it "
                              f"carries frequencies up to {nyquist:.3g} Hz, and the network's "
                              f"{self.native.peak_freq:g} Hz wavelet needs up to {needed:g} Hz. Is the sample "
                              f"interval in the right unit (a time axis in milliseconds labelled seconds)?")

    def _window_starts(self, span: float, overlap: float) -> np.ndarray:
        left = float(self.receiver_x.min())
        room = max(span - self.window_width, 0.0)
        if room <= 1e-6 * self.window_width:
            return np.array([left + 0.5 * room])
        stride = self.window_width * (1.0 - overlap)
        count = int(np.ceil(room / stride - 1e-9)) + 1
        return np.linspace(left, left + room, count)

    def _plan_window(self, start: float) -> _Window:
        a = self.scale
        receivers = start + a * (self.native_receiver_x - self.native_receiver_x.min())
        sources = start + a * (self.native_source_x - self.native_receiver_x.min())
        spacing = a * float(np.ptp(self.native_source_x)) / max(len(self.native_source_x) - 1, 1)
        order = np.argsort(self.source_x, kind="stable")
        ordered = self.source_x[order]
        steps = np.diff(np.unique(self.receiver_x))
        tolerance = 0.5 * float(steps.min()) if steps.size else 0.0
        rmin, rmax = self.receiver_x.min() - tolerance, self.receiver_x.max() + tolerance
        shots = []
        for k, p in enumerate(sources):
            nearest = int(order[np.argmin(np.abs(ordered - p))])
            distance = abs(self.source_x[nearest] - p)
            if distance > spacing + 1e-6:
                raise SurveyError(f"the network's shot {k} of the window at {start:g} m falls at {p:g} m, "
                                  f"{distance:g} m from the nearest shot (at {self.source_x[nearest]:g} m); shots "
                                  f"at most {spacing:g} m apart are needed (the network's shot spacing at scale "
                                  f"{a:.3g})")
            i = int(np.searchsorted(ordered, p))
            if i < len(ordered) and abs(ordered[i] - p) < 1e-6:
                candidates = [(int(order[i]), 1.0)]
            elif 0 < i < len(ordered):
                left, right = ordered[i - 1], ordered[i]
                w = (p - left) / (right - left)
                candidates = [(int(order[i - 1]), 1.0 - w), (int(order[i]), w)]
            else:
                candidates = [(nearest, 1.0)]
            offsets = receivers - p
            weights = np.zeros((len(candidates), receivers.size))
            for c, (shot, w) in enumerate(candidates):
                at = self.source_x[shot] + offsets
                weights[c] = w * ((at >= rmin) & (at <= rmax))
            total = weights.sum(0)
            uncovered = total <= 0
            if uncovered.any():
                # No shot beside this one records these offsets: the nearest one's edge receiver stands in.
                best = int(np.argmax([w for _, w in candidates]))
                weights[best, uncovered] = 1.0
                total = weights.sum(0)
                self.notes.append(f"window at {start:g} m, shot {k}: {int(uncovered.sum())} of {receivers.size} "
                                  f"traces beyond the recorded offsets, filled from the nearest receiver")
            weights /= total
            parts = []
            for c, (shot, _) in enumerate(candidates):
                if not weights[c].any():
                    continue
                at = self.source_x[shot] + offsets
                parts.append((shot, weights[c][:, None] * linear_weights(self.receiver_x, at)))
            shots.append(tuple(parts))
        return _Window(start=float(start), shots=tuple(shots))

    def _check_grid_coverage(self) -> None:
        columns = np.arange(self.grid.nx) * self.grid.dx
        left = self.windows[0].start
        right = self.windows[-1].start + self.window_width
        reach = 0.1 * self.window_width + self.grid.dx
        if columns.min() < left - reach or columns.max() > right + reach:
            raise SurveyError(f"the grid spans {columns.min():g}..{columns.max():g} m but the receivers only see "
                              f"{left:g}..{right:g} m; columns far beyond the receiver line cannot be predicted "
                              f"(ask for a grid over the line)")

    def _time_matrix(self) -> Any:
        user, native, a = self.survey, self.native, self.scale
        # Native time t reads the user's recording at a (t - native delay) + user delay; shaped
        # data at a t (the shaping moves the wavelet's peak to the network's delay).
        if self.shaped:
            times = a * np.arange(native.nt) * native.dt
        else:
            times = a * (np.arange(native.nt) * native.dt - native.delay) + user.delay
        step = a * native.dt
        start = times[0] / user.dt
        if abs(step - user.dt) <= 1e-9 * user.dt and abs(start - round(start)) < 1e-6:
            return shift_matrix(user.nt, native.nt, int(round(start)))
        return resample_matrix(user.dt, user.nt, times, dt_out=step)

    # -- mapping ----------------------------------------------------------------------
    @property
    def n_windows(self) -> int:
        return len(self.windows)

    def describe(self) -> dict[str, Any]:
        """The plan, for provenance and messages."""
        native = self.native
        return {"scale": self.scale, "shaped": self.shaped, "windows_m": [w.start for w in self.windows],
                "window_width_m": self.window_width,
                "native": {"shots": native.n_shots, "nt": native.nt, "dt": native.dt,
                           "receivers": native.n_receivers, "nz": native.nz, "nx": native.nx, "dx": native.dx,
                           "peak_freq": native.peak_freq},
                "grid": dataclasses.asdict(self.grid), "notes": list(self.notes)}

    @property
    def is_identity(self) -> bool:
        """Whether the survey is the native acquisition itself (gathers and maps pass unchanged)."""
        user, native = self.survey, self.native
        same = lambda a, b: len(a) == len(b) and np.allclose(np.asarray(a) * user.dx, np.asarray(b) * native.dx)  # noqa: E731
        return (self.scale == 1.0 and self.n_windows == 1 and self.windows[0].start == 0.0
                and user.nt == native.nt and user.dt == native.dt
                and (self.shaped or abs(user.delay - native.delay) < 1e-12)
                and same(user.sources, native.sources) and same(user.receivers, native.receivers)
                and (self.grid.nz, self.grid.nx, self.grid.dx) == (native.nz, native.nx, native.dx))

    @staticmethod
    def deepest(survey: Survey, native: Survey, dx: float, *, shaped: bool = False) -> int:
        """The most grid rows of ``dx`` metres the network sees of ``survey`` at its preferred scale: the
        wavelet's, or 1 for ``shaped`` data (whose wavelet shaping sets), within what the recording and line allow."""
        native_depth = (native.nz - 1) * native.dx
        line = float(np.ptp([p[1] for p in survey.receivers])) * survey.dx / float(
            np.ptp([p[1] for p in native.receivers]) * native.dx)
        delays = (0.0, 0.0) if shaped else (survey.delay, native.delay)
        listen = ((survey.nt - 1) * survey.dt - delays[0] + 0.5 * survey.dt) / (
            (native.nt - 1) * native.dt - delays[1])
        preferred = 1.0 if shaped else native.peak_freq / survey.peak_freq
        scale = min(preferred, line, listen)
        return max(int(np.floor(scale * native_depth / dx + 1e-9)) + 1, 1)

    def gathers_to_native(self, gathers: Any) -> np.ndarray:
        """User gathers ``(N, S, T, R)`` to native gathers ``(N x windows, S_n, T_n, R_n)`` float32.

        Sample ``n``'s windows are rows ``n * n_windows ... (n + 1) * n_windows - 1``.
        """
        g = np.asarray(gathers, dtype=np.float32)
        n, s, t, r = g.shape
        expected = (self.survey.n_shots, self.survey.nt, self.survey.n_receivers)
        if (s, t, r) != expected:
            raise DataError(f"gathers of (shot, time, receiver) = {(s, t, r)}, the survey describes {expected}")
        # Time first, on every user trace: (T_u, N*S*R) -> (T_n, N, S, R).
        flat = np.moveaxis(g, 2, 0).reshape(t, -1)
        timed = np.asarray(self.time_matrix @ flat, dtype=np.float32).reshape(-1, n, s, r)
        timed = np.moveaxis(timed, 0, 2)  # (N, S, T_n, R)
        out = np.zeros((n, self.n_windows, self.native.n_shots, self.native.nt, self.native.n_receivers),
                       np.float32)
        for w, window in enumerate(self.windows):
            for k, parts in enumerate(window.shots):
                for shot, weights in parts:
                    out[:, w, k] += timed[:, shot] @ weights.T.astype(np.float32)
        return out.reshape(n * self.n_windows, *out.shape[2:])

    def velocity_to_user(self, velocity: Any) -> np.ndarray:
        """Native predictions ``(N x windows, 1, Z_n, X_n)`` to the user's grid ``(N, 1, nz, nx)``, blended."""
        v = np.asarray(velocity, dtype=np.float64)
        n = v.shape[0] // self.n_windows
        v = v.reshape(n, self.n_windows, *v.shape[-2:])
        a, n_dx = self.scale, self.native.dx
        native_z = np.arange(self.native.nz) * n_dx * a
        native_x = np.arange(self.native.nx) * n_dx * a
        user_z = np.arange(self.grid.nz) * self.grid.dx
        user_x = np.arange(self.grid.nx) * self.grid.dx
        rows = linear_weights(native_z, user_z)
        total = np.zeros((n, self.grid.nz, self.grid.nx))
        weight = np.zeros(self.grid.nx)
        offset = float(self.native_receiver_x.min()) * a  # native column 0 sits at the first receiver
        last = self.n_windows - 1
        for w, window in enumerate(self.windows):
            local = user_x - window.start + offset
            u = (user_x - window.start) / self.window_width
            # Triangular weights, zero at a window's edges; the line's two outer windows also
            # answer (faintly) for columns a little beyond the receivers.
            ramp = np.clip(np.minimum(u, 1.0 - u), 0.0, None) + 1e-6
            ramp *= ((u >= 0) | (w == 0)) & ((u <= 1) | (w == last))
            cols = linear_weights(native_x, local)
            total += ramp * np.einsum("zi,nij,xj->nzx", rows, v[:, w], cols)
            weight += ramp
        return (total / weight)[:, None].astype(np.float32)
