"""Acquisition mapping: any 2-D surface survey onto a model's native acquisition, and back.

A network trained on OpenFWI reads gathers of one acquisition only (70 receivers one per
10 m column, 5 surface shots evenly spread, 1000 samples at 1 ms, a 15 Hz Ricker) and
predicts a 70 x 70 map at 10 m. :class:`AcquisitionMap` plans how a user's survey (any
number and position of shots and receivers, any sampling and length, any output grid)
is read through that window, and maps the prediction back onto the user's grid.

**What scales.** The constant-density acoustic wave equation is unchanged when space and
time are stretched by the same factor ``a`` at the same velocities: a survey in which
every distance and every time is ``a`` times the native one, with a wavelet ``a`` times
slower (peak frequency divided by ``a``), records exactly the native wavefield, ``a``
times stretched. Grid spacing by itself is not part of that physics: a 20 m grid is only
how finely the answer is wanted; a 15 Hz survey on it is the same physics as the native
one at ``a = 1``. Stretching space without time (resampling a 20 m grid to 10 m cells and
keeping seconds) would halve every apparent velocity. So the map chooses ``a`` from the
wavelet, ``a = f_native / f_survey`` (the network then sees the wavelet it was trained
on), and moves it only as far as the survey forces:

* the native depth, ``a x 690 m``, must reach the bottom of the user's grid (``a`` up);
* the native recording, ``a x 1 s`` after the wavelet's peak, must fit in the user's
  recording (``a`` down), or the deepest part of the grid is unseen;
* the native line, ``a x 690 m`` of receivers, must fit in the user's receiver line
  (``a`` down); wider lines are read in overlapping windows and blended.

No ``a`` satisfies all three: the survey cannot be mapped, and :class:`AcquisitionMap`
says which requirement fails. Velocities are never scaled. Amplitudes are left as
recorded (the mapping is linear); a scale far from the trained wavelet's frequency is
warned about, since the network then sees a wavelet band it was not trained on.

**How.** Time is resampled with a Kaiser-windowed sinc (anti-aliased: the cut-off is the
lower of the two Nyquist frequencies, times ``rolloff``), stretched by ``a`` and shifted
so the wavelet's peak lands where the network expects it. Receivers are interpolated
linearly along the line. Each native shot is taken from the user's shots beside it in
the common-offset domain (a shot at the same position is used as it is; between two shots
the gathers are blended by distance at equal offsets; a shot a little off the end of the
user's shots is borrowed from the nearest one). The prediction of each window is
interpolated bilinearly onto the user's grid and windows are blended with triangular
weights that fall to zero at their edges.

Nothing here imports torch; :func:`predict_on_survey` runs a network through the map.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import DataError, SurveyError
from .survey import Survey

__all__ = ["AcquisitionMap", "Grid", "native_survey", "predict_on_survey", "resample_matrix",
           "survey_from_coordinates"]

#: The ratio of equivalent to trained peak frequency beyond which a warning is given.
FREQUENCY_TOLERANCE = 1.5


@dataclasses.dataclass(frozen=True)
class Grid:
    """The velocity grid wanted: ``nz x nx`` cells of ``dx`` metres, column 0 at ``x = 0``."""

    nz: int
    nx: int
    dx: float

    def __post_init__(self) -> None:
        if self.nz < 1 or self.nx < 1 or not (math.isfinite(self.dx) and self.dx > 0):
            raise SurveyError(f"grid {self.nz} x {self.nx} at {self.dx} m: expected positive sizes and spacing")


def native_survey(shape: Any = None) -> Survey:
    """The acquisition a network of ``shape`` (an :class:`~fwi_plugins.specs.IOShape`) was trained on.

    OpenFWI's layout at the shape's sizes: one receiver per 10 m column, shots evenly spread,
    1 ms sampling, a 15 Hz Ricker.
    """
    if shape is None:
        return Survey.openfwi()
    if shape.receivers != shape.width:
        raise SurveyError(f"a native acquisition of {shape.receivers} receivers on {shape.width} columns is not "
                          f"OpenFWI's layout (one receiver per column); this model's acquisition cannot be mapped")
    return Survey.openfwi(nz=shape.depth, nx=shape.width, n_sources=shape.shots, nt=shape.time)


def survey_from_coordinates(*, source_x: Any, receiver_x: Any, dt: float, nt: int, dx: float | None = None,
                            source_z: Any = None, receiver_z: Any = None, nz: int | None = None,
                            where: str = "input") -> tuple[Survey, float]:
    """A survey from positions in metres (xarray coordinates, SEG-Y headers) and its x origin.

    The grid's column 0 is put at the leftmost source or receiver; ``dx`` defaults to the
    smallest receiver step, ``nz`` to the number of columns.

    Returns:
        ``(survey, origin)``: positions in the survey are ``(metres - origin) / dx``.
    """
    sx = np.asarray(source_x, dtype=np.float64).ravel()
    rx = np.asarray(receiver_x, dtype=np.float64).ravel()
    sz = np.zeros_like(sx) if source_z is None else np.asarray(source_z, dtype=np.float64).ravel()
    rz = np.zeros_like(rx) if receiver_z is None else np.asarray(receiver_z, dtype=np.float64).ravel()
    if not (np.isfinite(sx).all() and np.isfinite(rx).all() and np.isfinite(sz).all() and np.isfinite(rz).all()):
        raise DataError(f"{where}: source or receiver coordinates hold NaN or infinite values")
    if dx is None:
        steps = np.diff(np.unique(rx))
        if steps.size == 0:
            raise DataError(f"{where}: all receivers at one position ({rx[0]:g} m); the grid spacing cannot be "
                            f"told from them")
        dx = float(steps.min())
    origin = float(min(sx.min(), rx.min()))
    nx = int(np.ceil(max(sx.max(), rx.max()) - origin) / dx + 1e-6) + 1
    try:
        survey = Survey(nz=nz or nx, nx=nx, dx=dx, nt=int(nt), dt=float(dt),
                        sources=tuple(zip((sz / dx).tolist(), ((sx - origin) / dx).tolist())),
                        receivers=tuple(zip((rz / dx).tolist(), ((rx - origin) / dx).tolist())))
    except SurveyError as exc:
        raise DataError(f"{where}: the coordinates do not form a survey ({exc})") from None
    return survey, origin


# -- interpolation operators --------------------------------------------------------------
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


def _shift_matrix(nt_in: int, nt_out: int, start: int) -> Any:
    """Exact sample selection ``out[j] = in[j + start]`` (zeros off the recording)."""
    from scipy import sparse

    src = np.arange(nt_out) + start
    keep = (src >= 0) & (src < nt_in)
    return sparse.csr_matrix((np.ones(int(keep.sum())), (np.flatnonzero(keep), src[keep])), shape=(nt_out, nt_in))


def _linear(positions: np.ndarray, at: np.ndarray) -> np.ndarray:
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


# -- the plan -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Window:
    start: float  # metres: the user's x of native column 0
    shots: tuple[tuple[tuple[int, np.ndarray], ...], ...]  # per native shot: (user shot, (R_n, R_u) weights)


class AcquisitionMap:
    """How a user's survey is read by a network of a native acquisition, and its answer written back.

    Args:
        survey: the user's acquisition (positions in grid cells of ``survey.dx`` metres).
        native: the network's acquisition (:func:`native_survey`).
        grid: the velocity grid wanted (default: the survey's).
        scale: the stretch ``a`` (user metres per native metre); default chosen as the
            module's documentation explains. A given scale is checked, not moved.
        overlap: the least overlap of neighbouring windows, as a fraction of a window.

    Raises:
        SurveyError: the survey cannot be mapped; the message says which requirement fails.
    """

    def __init__(self, survey: Survey, native: Survey, *, grid: Grid | None = None, scale: float | None = None,
                 overlap: float = 0.5) -> None:
        self.survey, self.native = survey, native
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
        native_depth = (native.nz - 1) * n_dx
        native_listen = (native.nt - 1) * native.dt - native.delay
        user_span = float(np.ptp(self.receiver_x))
        user_depth = (self.grid.nz - 1) * self.grid.dx
        user_listen = (survey.nt - 1) * survey.dt - survey.delay + 0.5 * survey.dt

        if survey.n_receivers < 2:
            raise SurveyError("the survey has one receiver; mapping onto a receiver line needs at least two")
        bounds = {
            "depth": (user_depth / native_depth,
                      f"the grid is {user_depth:g} m deep and the network sees {native_depth:g} m x scale"),
            "recording": (user_listen / native_listen,
                          f"the recording holds {user_listen:g} s after the wavelet's peak and the network reads "
                          f"{native_listen:g} s x scale"),
            "line": (user_span / native_width,
                     f"the receivers span {user_span:g} m and the network's line is {native_width:g} m x scale"),
        }
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
            preferred = native.peak_freq / survey.peak_freq
            scale = min(max(preferred, lo), hi)
        else:
            if not (math.isfinite(scale) and scale > 0):
                raise SurveyError(f"scale {scale!r}: expected a positive number")
            for name, (bound, why) in bounds.items():
                fails = scale < bound * (1 - 1e-9) if name == "depth" else scale > bound * (1 + 1e-9)
                if fails:
                    raise SurveyError(f"scale {scale:g} does not map the survey: {why} "
                                      f"(needs {'at least' if name == 'depth' else 'at most'} {bound:.3g})")
        self.scale = float(scale)
        equivalent = survey.peak_freq * self.scale
        if not 1 / FREQUENCY_TOLERANCE <= equivalent / native.peak_freq <= FREQUENCY_TOLERANCE:
            self.notes.append(f"the survey's {survey.peak_freq:g} Hz wavelet reads as {equivalent:.3g} Hz at scale "
                              f"{self.scale:.3g}; the network was trained on {native.peak_freq:g} Hz")

        surface = self.scale * n_dx
        for label, depths in (("source", source_z), ("receiver", receiver_z)):
            if depths.max(initial=0.0) > surface + 1e-9:
                i = int(np.argmax(depths))
                raise SurveyError(f"{label} {i} is {depths[i]:g} m below the surface; the network was trained on "
                                  f"surface acquisition (within {surface:g} m at scale {self.scale:.3g})")

        self.window_width = native_width * self.scale
        self.windows = tuple(self._plan_window(start) for start in self._window_starts(user_span, overlap))
        self._check_grid_coverage()
        self.time_matrix = self._time_matrix()

    # -- planning ---------------------------------------------------------------------
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
                parts.append((shot, weights[c][:, None] * _linear(self.receiver_x, at)))
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
        # Native time t reads the user's recording at a (t - native delay) + user delay.
        times = a * (np.arange(native.nt) * native.dt - native.delay) + user.delay
        step = a * native.dt
        start = times[0] / user.dt
        if abs(step - user.dt) <= 1e-9 * user.dt and abs(start - round(start)) < 1e-6:
            return _shift_matrix(user.nt, native.nt, int(round(start)))
        return resample_matrix(user.dt, user.nt, times, dt_out=step)

    # -- mapping ----------------------------------------------------------------------
    @property
    def n_windows(self) -> int:
        return len(self.windows)

    def describe(self) -> dict[str, Any]:
        """The plan, for provenance and messages."""
        native = self.native
        return {"scale": self.scale, "windows_m": [w.start for w in self.windows],
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
                and user.nt == native.nt and user.dt == native.dt and abs(user.delay - native.delay) < 1e-12
                and same(user.sources, native.sources) and same(user.receivers, native.receivers)
                and (self.grid.nz, self.grid.nx, self.grid.dx) == (native.nz, native.nx, native.dx))

    @staticmethod
    def deepest(survey: Survey, native: Survey, dx: float) -> int:
        """The most grid rows of ``dx`` metres the network sees of ``survey`` at its preferred scale."""
        native_depth = (native.nz - 1) * native.dx
        line = float(np.ptp([p[1] for p in survey.receivers])) * survey.dx / float(
            np.ptp([p[1] for p in native.receivers]) * native.dx)
        listen = ((survey.nt - 1) * survey.dt - survey.delay + 0.5 * survey.dt) / (
            (native.nt - 1) * native.dt - native.delay)
        scale = min(native.peak_freq / survey.peak_freq, line, listen)
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
        rows = _linear(native_z, user_z)
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
            cols = _linear(native_x, local)
            total += ramp * np.einsum("zi,nij,xj->nzx", rows, v[:, w], cols)
            weight += ramp
        return (total / weight)[:, None].astype(np.float32)


# -- predicting through the map -------------------------------------------------------------
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
        from .engine.predict import predict
    if native is None:
        from .pretrained import config_of

        config = config_of(model)
        native = native_survey(config.shape if config is not None else None)
    mapping = AcquisitionMap(survey, native, grid=grid, scale=scale)
    for note in mapping.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    if mapping.is_identity:
        return predict(model, gathers, **kwargs)
    velocity = predict(model, mapped_gathers(gathers, mapping), **kwargs)
    return mapping.velocity_to_user(velocity)
