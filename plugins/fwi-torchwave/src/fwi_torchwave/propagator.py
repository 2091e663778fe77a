"""The scalar wave equation in plain torch: C-PML profiles, one time step, resampling, the loop.

The scheme is the one Deepwave's ``scalar`` propagator documents, so that the two give
the same gathers for the same inputs:

* ``u_tt = v^2 lap(u) + f``, second order in time, centred differences of order
  ``accuracy`` in space on a grid padded by ``accuracy // 2`` cells (where every
  derivative is zero) plus the PML width, the model extended by edge replication;
* a convolutional PML (C-PML) on every side, in the form with one auxiliary pair
  (``psi``, ``zeta``) per axis: ``sigma = sigma0 * d^2`` (``d`` the fractional depth into
  the layer, ``sigma0 = 3 max_vel ln(1000) / (2 width dx)``, a 0.1 % reflection target),
  ``alpha = pi f_pml (1 - d)``, ``a = exp(-(sigma + alpha) dt)`` and
  ``b = sigma / (sigma + alpha) (a - 1)``;
* an internal time step ``dt / n`` with the smallest integer ``n`` that keeps the
  Courant number ``dt_n max_vel sqrt(sum 1/dx_i^2)`` at or below 0.6; the source is
  upsampled to it and the receivers downsampled from it by band-limited (FFT) resampling;
* the source amplitude added to its cell after each step is ``-v^2 dt_n^2`` times the
  wavelet sample, and receivers record the field before each step.

Everything is batched over a leading shot axis; a model per shot.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

#: Centred first-derivative weights ``c_k`` for ``sum c_k (f[i+k] - f[i-k]) / dx``.
FIRST = {2: (1 / 2,), 4: (2 / 3, -1 / 12), 6: (3 / 4, -3 / 20, 1 / 60), 8: (4 / 5, -1 / 5, 4 / 105, -1 / 280)}
#: Centred second-derivative weights ``c_k`` for ``sum c_k ((f[i+k] - f[i]) + (f[i-k] - f[i])) / dx^2``.
SECOND = {2: (1.0,), 4: (4 / 3, -1 / 12), 6: (3 / 2, -3 / 20, 1 / 90), 8: (8 / 5, -1 / 5, 8 / 315, -1 / 560)}
#: The Courant number the internal time step is chosen for.
COURANT = 0.6
#: The PML's target reflection coefficient.
REFLECTION = 1e-3


def step_ratio(dt: float, spacing: Sequence[float], max_vel: float) -> int:
    """Internal steps per output sample: the least ``n`` with ``(dt / n) max_vel |1/dx| <= 0.6``."""
    norm = math.sqrt(sum(1.0 / h**2 for h in spacing))
    return max(1, math.ceil(dt * max_vel * norm / COURANT))


def upsample(signal: torch.Tensor, ratio: int) -> torch.Tensor:
    """Band-limited upsampling of the last axis by ``ratio`` (its Nyquist bin dropped)."""
    if ratio == 1:
        return signal
    n = signal.shape[-1]
    spectrum = torch.fft.rfft(signal, norm="ortho") * math.sqrt(ratio)
    if n % 2 == 0:
        spectrum[..., -1] = 0
    spectrum = F.pad(spectrum, (0, n * ratio // 2 + 1 - spectrum.shape[-1]))
    return torch.fft.irfft(spectrum, n=n * ratio, norm="ortho")


def downsample(signal: torch.Tensor, ratio: int) -> torch.Tensor:
    """Band-limited downsampling of the last axis by ``ratio`` (length divisible by it)."""
    if ratio == 1:
        return signal
    n = signal.shape[-1] // ratio
    spectrum = torch.fft.rfft(signal, norm="ortho")[..., : n // 2 + 1]
    if n % 2 == 0:
        spectrum = spectrum.clone()
        spectrum[..., -1] = 0
    return torch.fft.irfft(spectrum, n=n, norm="ortho") / math.sqrt(ratio)


def _first(f: torch.Tensor, dim: int, accuracy: int, scale: float) -> torch.Tensor:
    """First derivative along ``dim`` (-1 or -2) on the interior, zero on the ``accuracy // 2`` edge cells."""
    h = accuracy // 2
    n = f.shape[dim] - 2 * h
    out = sum(c * (f.narrow(dim, h + k, n) - f.narrow(dim, h - k, n))
              for k, c in enumerate(FIRST[accuracy], start=1)) * scale
    return F.pad(out, (h, h) if dim == -1 else (0, 0, h, h))


def _second(f: torch.Tensor, dim: int, accuracy: int, scale: float) -> torch.Tensor:
    """Second derivative along ``dim`` (-1 or -2), written so that a constant field gives exactly zero."""
    h = accuracy // 2
    n = f.shape[dim] - 2 * h
    centre = f.narrow(dim, h, n)
    out = sum(c * ((f.narrow(dim, h + k, n) - centre) + (f.narrow(dim, h - k, n) - centre))
              for k, c in enumerate(SECOND[accuracy], start=1)) * scale
    return F.pad(out, (h, h) if dim == -1 else (0, 0, h, h))


def pml_profile(n: int, *, pad: int, widths: tuple[int, int], spacing: float, dt: float, max_vel: float,
                freq: float, accuracy: int, dtype: torch.dtype,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The C-PML coefficients ``a``, ``b`` and ``db/dx`` along one axis of ``n`` padded cells.

    The layers start ``pad + width`` cells in from each end (``pad`` = the stencil's
    ``accuracy // 2`` edge cells); inside the model ``a = b = 0``.
    """
    x = torch.arange(n, dtype=torch.float64)
    sigma = torch.zeros(n, dtype=torch.float64)
    depth = torch.zeros(n, dtype=torch.float64)
    starts = (float(pad + widths[0]), float(n - 1 - pad - widths[1]))
    for side, width in enumerate(widths):
        if width == 0:
            continue
        distance = starts[0] - x if side == 0 else x - starts[1]
        fraction = (distance / width).clamp(0, 1)
        sigma0 = -3.0 * max_vel * math.log(REFLECTION) / (2 * width * spacing)
        sigma = sigma + sigma0 * fraction**2
        depth = torch.maximum(depth, fraction)
    alpha = math.pi * freq * (1 - depth)
    total = (sigma + alpha) * dt
    a = torch.exp(-total)
    ratio = torch.where(total > 0, sigma * dt / torch.where(total > 0, total, 1.0), 0.0)
    b = ratio * torch.expm1(-total)
    a[depth == 0] = 0
    db = _first(b.view(1, n), -1, accuracy, 1.0 / spacing).view(n)
    return tuple(t.to(device=device, dtype=dtype) for t in (a, b, db))  # type: ignore[return-value]


Fields = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def make_step(accuracy: int, dz: float, dx: float) -> Callable[..., Fields]:
    """The time step for one accuracy and grid spacing (constants baked in, so it compiles well)."""
    rz, rx, rz2, rx2 = 1.0 / dz, 1.0 / dx, 1.0 / dz**2, 1.0 / dx**2

    def step(u: torch.Tensor, prev: torch.Tensor, psi_z: torch.Tensor, psi_x: torch.Tensor,
             zeta_z: torch.Tensor, zeta_x: torch.Tensor, v2dt2: torch.Tensor,
             az: torch.Tensor, bz: torch.Tensor, dbz: torch.Tensor,
             ax: torch.Tensor, bx: torch.Tensor, dbx: torch.Tensor) -> Fields:
        du_z = _first(u, -2, accuracy, rz)
        du_x = _first(u, -1, accuracy, rx)
        t_z = (1 + bz) * _second(u, -2, accuracy, rz2) + dbz * du_z + _first(az * psi_z, -2, accuracy, rz)
        t_x = (1 + bx) * _second(u, -1, accuracy, rx2) + dbx * du_x + _first(ax * psi_x, -1, accuracy, rx)
        w = (1 + bz) * t_z + az * zeta_z + (1 + bx) * t_x + ax * zeta_x
        new = v2dt2 * w + 2 * u - prev
        return (new, u, bz * du_z + az * psi_z, bx * du_x + ax * psi_x,
                bz * t_z + az * zeta_z, bx * t_x + ax * zeta_x)

    return step


_COMPILED: dict[tuple[int, float, float], Callable[..., Fields]] = {}
_COMPILE_FAILED: set[str] = set()


def compiled_step(accuracy: int, dz: float, dx: float) -> Callable[..., Fields]:
    """``make_step`` wrapped in ``torch.compile`` once per process and setting."""
    key = (accuracy, dz, dx)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(make_step(accuracy, dz, dx), dynamic=False)
    return _COMPILED[key]


def propagate(velocity: torch.Tensor, *, spacing: tuple[float, float], dt: float, wavelet: torch.Tensor,
              sources: torch.Tensor, receivers: torch.Tensor, accuracy: int, pml_width: int, pml_freq: float,
              max_vel: float, compile: bool = False) -> torch.Tensor:
    """Simulate one shot per model.

    Args:
        velocity: ``(N, Z, X)`` in m/s, one model per shot.
        spacing: ``(dz, dx)`` in metres.
        dt: the output sample interval in seconds.
        wavelet: ``(nt,)`` or ``(N, nt)`` source amplitudes at ``dt``.
        sources: ``(N, 2)`` integer grid positions ``(z, x)`` of each shot's source.
        receivers: ``(R, 2)`` integer grid positions shared by every shot.
        accuracy: spatial order, 2, 4, 6 or 8.
        pml_width: absorbing layer width in cells on every side.
        pml_freq: the frequency the PML is tuned for, Hz.
        max_vel: the speed fixing the internal time step and the PML strength.
        compile: fuse the step with ``torch.compile`` (falls back to plain torch if that fails).

    Returns:
        ``(N, R, nt)`` receiver amplitudes at ``dt``, differentiable by autograd.
    """
    n_shots, nz, nx = velocity.shape
    device, dtype = velocity.device, velocity.dtype
    nt = wavelet.shape[-1]
    ratio = step_ratio(dt, spacing, max_vel)
    inner_dt = dt / ratio
    h = accuracy // 2
    pad = h + pml_width
    model = F.pad(velocity.unsqueeze(1), (pad, pad, pad, pad), mode="replicate").squeeze(1)
    height, width = model.shape[-2:]
    v2dt2 = model.square() * inner_dt**2
    rows = torch.arange(n_shots, device=device)
    src = (sources[:, 0].long() + pad) * width + sources[:, 1].long() + pad
    rec = (receivers[:, 0].long() + pad) * width + receivers[:, 1].long() + pad
    amplitudes = upsample(wavelet.to(device=device, dtype=dtype).expand(n_shots, nt), ratio)
    amplitudes = -amplitudes * v2dt2.reshape(n_shots, -1)[rows, src].unsqueeze(1)  # (N, nt * ratio)
    profiles = _pml_profiles((height, width), h=h, pml_width=pml_width, spacing=spacing, dt=inner_dt, max_vel=max_vel,
                             pml_freq=pml_freq, accuracy=accuracy, dtype=dtype, device=device)

    compile = compile and not _COMPILE_FAILED  # a compiler that failed once is not tried again
    step = compiled_step(accuracy, *spacing) if compile else make_step(accuracy, *spacing)
    fields = [torch.zeros_like(model) for _ in range(6)]
    recorded = []
    for t in range(nt * ratio):
        recorded.append(fields[0].reshape(n_shots, -1).index_select(1, rec))
        try:
            fields = list(step(*fields, v2dt2, *profiles))
        except Exception as exc:
            if not compile:
                raise
            # A compiler that is missing or broken shows at the first call, not at wrapping.
            _warn_compile(exc)
            compile, step = False, make_step(accuracy, *spacing)
            fields = list(step(*fields, v2dt2, *profiles))
        fields[0].view(n_shots, -1).index_put_((rows, src), amplitudes[:, t], accumulate=True)
    data = torch.stack(recorded, dim=-1)  # (N, R, nt * ratio)
    return downsample(data, ratio)


def _pml_profiles(size: tuple[int, int], *, h: int, pml_width: int, spacing: tuple[float, float], dt: float,
                  max_vel: float, pml_freq: float, accuracy: int, dtype: torch.dtype,
                  device: torch.device) -> list[torch.Tensor]:
    """The PML's ``a``, ``b`` and ``db`` along depth then width of the padded model, shaped to broadcast over it."""
    profiles = []
    for axis, n in enumerate(size):
        a, b, db = pml_profile(n, pad=h, widths=(pml_width, pml_width), spacing=spacing[axis], dt=dt,
                               max_vel=max_vel, freq=pml_freq, accuracy=accuracy, dtype=dtype, device=device)
        shape = (n, 1) if axis == 0 else (1, n)
        profiles += [a.view(shape), b.view(shape), db.view(shape)]
    return profiles


def _warn_compile(exc: Exception) -> None:
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    if message not in _COMPILE_FAILED:
        _COMPILE_FAILED.add(message)
        warnings.warn(f"torchwave: torch.compile failed ({message}); simulating with plain torch, which is "
                      f"slower", RuntimeWarning, stacklevel=3)
