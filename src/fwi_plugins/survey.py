"""Acquisition geometry and source wavelet.

Positions are grid indices ``(z, x)`` (fractional allowed for ``x``), the grid spacing is
in metres and time in seconds. :meth:`Survey.openfwi` is the OpenFWI benchmark geometry.
Core knows geometry only; physics plugins turn it into simulations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SurveyError



@dataclass(frozen=True, kw_only=True)
class Survey:
    """A 2D surface (or any) acquisition on a regular grid.

    Attributes:
        nz, nx: model grid size (depth, horizontal).
        dx: grid spacing in metres (same in both directions).
        nt, dt: number of time samples and sample interval in seconds.
        sources: source positions as grid indices ``(z, x)``, one per shot.
        receivers: receiver positions ``(z, x)``, shared by every shot.
        peak_freq: peak frequency of the wavelet in Hz.
        wavelet: ``"ricker"`` (the only built-in shape so far).
        wavelet_delay: time of the wavelet peak in seconds (default ``1.5 / peak_freq``).
        pml_width: absorbing boundary width in cells on each side.
        vmin, vmax: the velocity range (m/s) the survey is checked against.
    """

    nz: int
    nx: int
    dx: float
    nt: int
    dt: float
    sources: tuple[tuple[float, float], ...]
    receivers: tuple[tuple[float, float], ...]
    peak_freq: float = 15.0
    wavelet: str = "ricker"
    wavelet_delay: float | None = None
    pml_width: int = 20
    vmin: float = 1000.0
    vmax: float = 6000.0

    def __post_init__(self) -> None:
        for label in ("sources", "receivers"):
            points = getattr(self, label)
            try:
                points = tuple(tuple(float(v) for v in p) for p in points)
            except (TypeError, ValueError, OverflowError):
                raise SurveyError(f"survey field {label!r} must be a list of (z, x) grid positions, "
                                  f"got {points!r}") from None
            object.__setattr__(self, label, points)
        for name in ("nz", "nx", "nt", "pml_width"):
            value = getattr(self, name)
            whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not whole or value < (0 if name == "pml_width" else 1):
                kind = "a non-negative" if name == "pml_width" else "a positive"
                raise SurveyError(f"survey field {name!r} must be {kind} integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("dx", "dt", "peak_freq", "vmin", "vmax"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                               and value > 0):
                raise SurveyError(f"survey field {name!r} must be a positive number, got {value!r}")
        if self.wavelet_delay is not None and (isinstance(self.wavelet_delay, bool) or not (
                isinstance(self.wavelet_delay, (int, float)) and math.isfinite(self.wavelet_delay))):
            raise SurveyError(f"survey field 'wavelet_delay' must be a number of seconds, got {self.wavelet_delay!r}")
        if self.wavelet != "ricker":
            raise SurveyError(f"survey field 'wavelet': {self.wavelet!r} is not known; expected 'ricker'")
        if not self.sources:
            raise SurveyError("survey field 'sources' is empty: at least one source is needed")
        if not self.receivers:
            raise SurveyError("survey field 'receivers' is empty: at least one receiver is needed")
        for label, points in (("sources", self.sources), ("receivers", self.receivers)):
            for i, p in enumerate(points):
                if len(p) != 2:
                    raise SurveyError(f"survey field {label!r}[{i}] must be (z, x), got {p!r}")
                z, x = p
                if not (0 <= z <= self.nz - 1 and 0 <= x <= self.nx - 1):
                    raise SurveyError(f"survey field {label!r}[{i}] = {p} is off the {self.nz} x {self.nx} grid")
        if not 0 < self.vmin < self.vmax:
            raise SurveyError(f"survey fields 'vmin' and 'vmax' must satisfy 0 < vmin < vmax, "
                              f"got {self.vmin} and {self.vmax}")
        if self.pml_width < 0:
            raise SurveyError(f"survey field 'pml_width' must be >= 0, got {self.pml_width}")

    # -- presets -----------------------------------------------------------------
    @classmethod
    def openfwi(cls, **overrides: Any) -> Survey:
        """OpenFWI's geometry: 70 x 70 at 10 m, 5 surface sources, 70 receivers, 1 s at 1 ms, 15 Hz."""
        nx = int(overrides.pop("nx", 70))
        nz = int(overrides.pop("nz", 70))
        n_sources = int(overrides.pop("n_sources", 5))
        base = dict(
            nz=nz, nx=nx, dx=10.0, nt=1000, dt=0.001,
            sources=evenly_spaced(n_sources, nx),
            receivers=tuple((0.0, float(x)) for x in range(nx)),
            # OpenFWI's own generator padded 120 damping cells; a PML of 20 absorbs as well
            # (0.15% change in the gathers at 4500 m/s) at a sixth of the cost.
            peak_freq=15.0, pml_width=20, vmin=1500.0, vmax=4500.0,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def small(cls, *, nz: int = 32, nx: int = 32, nt: int = 300, n_sources: int = 3, **overrides: Any) -> Survey:
        """A tiny survey for tests and quick experiments (10 m grid, 2 ms, 15 Hz)."""
        base = dict(nz=nz, nx=nx, dx=10.0, nt=nt, dt=0.002,
                    sources=evenly_spaced(n_sources, nx),
                    receivers=tuple((0.0, float(x)) for x in range(nx)),
                    peak_freq=15.0, pml_width=20, vmin=1500.0, vmax=4500.0)
        base.update(overrides)
        return cls(**base)

    # -- derived -----------------------------------------------------------------
    @property
    def n_shots(self) -> int:
        return len(self.sources)

    @property
    def n_receivers(self) -> int:
        return len(self.receivers)

    @property
    def delay(self) -> float:
        return self.wavelet_delay if self.wavelet_delay is not None else 1.5 / self.peak_freq

    def times(self) -> np.ndarray:
        return np.arange(self.nt) * self.dt

    def wavelet_samples(self) -> np.ndarray:
        """The source wavelet, ``(nt,)`` float32."""
        t = self.times() - self.delay
        a = (np.pi * self.peak_freq * t) ** 2
        return ((1.0 - 2.0 * a) * np.exp(-a)).astype(np.float32)

    def with_grid(self, nz: int, nx: int) -> Survey:
        return replace(self, nz=nz, nx=nx)

    # -- files -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = [list(p) for p in self.sources]
        data["receivers"] = [list(p) for p in self.receivers]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "survey") -> Survey:
        data = dict(data)
        preset = data.pop("preset", None)
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known - {"n_sources"})
        if unknown:
            from .errors import UnknownNameError
            raise UnknownNameError(f"field in {source}", unknown[0], sorted(known))
        try:
            if preset == "openfwi":
                return cls.openfwi(**data)
            if preset == "small":
                return cls.small(**data)
            if preset is not None:
                raise SurveyError(f"{source}: unknown preset {preset!r}; expected 'openfwi' or 'small'")
            return cls(**data)
        except SurveyError as exc:
            raise SurveyError(f"{source}: {exc}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise SurveyError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2)
        elif path.suffix == ".toml":
            from .settings_files import to_toml

            data = {k: v for k, v in self.to_dict().items() if v is not None}
            text = to_toml({"survey": data}).lstrip("\n")
        else:
            raise SurveyError(f"{path}: a survey file ends in .toml or .json")
        from .atomic import atomic_write_text
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Survey:
        """Read a survey from ``.toml`` or ``.json``, or take a preset name (``openfwi``, ``small``)."""
        if str(path) in ("openfwi", "small"):
            return cls.from_dict({"preset": str(path)})
        path = Path(path)
        if not path.is_file():
            raise SurveyError(f"survey file {path} does not exist (or use a preset: openfwi, small)")
        from .settings_files import read_toml_or_json

        data = read_toml_or_json(path, what="a survey file", error=SurveyError)
        if isinstance(data, Mapping) and isinstance(data.get("survey"), Mapping):
            data = data["survey"]
        if not isinstance(data, Mapping):
            raise SurveyError(f"{path}: expected a table of survey fields (nz, nx, dx, nt, dt, sources, "
                              f"receivers, ...), found a {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    # -- checks ------------------------------------------------------------------
    def check_velocity(self, velocity: Any, *, accuracy: int = 4, name: str = "velocity") -> None:
        """Fail before simulating if ``velocity`` cannot be simulated faithfully on this survey.

        Checks shape, finiteness, positivity, the survey's velocity range, the grid points per
        shortest wavelength for the spatial accuracy order, and that the time sampling resolves
        the wavelet. Time-step stability (CFL) is the solver's job: deepwave subdivides ``dt``
        internally for the fastest velocity it is given.

        Args:
            velocity: array or tensor whose last two dimensions are ``(nz, nx)``, in m/s.
            accuracy: the solver's spatial finite-difference order.
            name: what to call the model in messages (for example a file name).

        Raises:
            SurveyError: naming the failed check and what to change.
        """
        v = np.asarray(velocity.detach().cpu() if hasattr(velocity, "detach") else velocity)
        if v.shape[-2:] != (self.nz, self.nx):
            raise SurveyError(f"{name} has grid {tuple(v.shape[-2:])}, the survey expects ({self.nz}, {self.nx})")
        if not np.all(np.isfinite(v)):
            raise SurveyError(f"{name} holds NaN or infinite values")
        lo, hi = float(v.min()), float(v.max())
        if lo <= 0:
            raise SurveyError(f"{name} holds non-positive values (min {lo:g} m/s)")
        if lo < self.vmin or hi > self.vmax:
            from .units import velocity_units_guess

            hint = " (units off by 1000? velocity is in m/s)" if velocity_units_guess(lo, hi) else ""
            raise SurveyError(f"{name} spans {lo:g}..{hi:g} m/s, outside the survey's stated range "
                              f"{self.vmin:g}..{self.vmax:g} m/s{hint}")
        # The Ricker spectrum is negligible above about 2.5 x the peak frequency.
        fmax = 2.5 * self.peak_freq
        ppw = lo / fmax / self.dx
        needed = {2: 10.0, 4: 5.0, 6: 4.0, 8: 3.5}.get(accuracy, 5.0) * 0.5
        if ppw < needed:
            raise SurveyError(
                f"{name}: {ppw:.2f} grid points per shortest wavelength (v={lo:g} m/s, f={fmax:g} Hz, "
                f"dx={self.dx:g} m); accuracy order {accuracy} needs at least {needed:g}. "
                f"Use a finer grid or a lower peak frequency.")
        nyquist = 0.5 / self.dt
        if fmax > nyquist:
            raise SurveyError(
                f"survey time step dt={self.dt:g} s samples up to {nyquist:g} Hz, below the wavelet's "
                f"highest frequency {fmax:g} Hz (2.5 x peak_freq); use dt <= {0.5 / fmax:g} s")


def evenly_spaced(n: int, nx: int) -> tuple[tuple[float, float], ...]:
    """``n`` surface positions spread evenly across ``nx`` columns, ends included (OpenFWI's layout)."""
    if n <= 0:
        raise SurveyError(f"number of sources must be positive, got {n}")
    if n == 1:
        return ((0.0, float((nx - 1) // 2)),)
    return tuple((0.0, float(round(i * (nx - 1) / (n - 1)))) for i in range(n))
