"""Physics-based refinement: full-waveform inversion of velocity from a starting model.

Typical use is to polish a network's prediction so that it explains the recorded data::

    from fwi_plugins import api
    from fwi_plugins.engine.refine import refine

    physics = api.build_physics("deepwave", survey=api.Survey.openfwi())
    result = refine(predicted, observed, physics=physics, iterations=100, frequencies=(5, 10))
    result.velocity, result.history

The velocity is optimised in units of the allowed velocity range and projected back into
``[vmin, vmax]`` after every step. The default ``step="normalized"`` is steepest descent
with each model's gradient scaled so that its largest entry moves ``lr``: the update keeps
the gradient's shape, so cells the data barely constrain barely move. ``step="adam"``
moves every cell about ``lr`` per step whatever its gradient; it lowers the misfit
faster but leaves high-wavenumber noise in poorly illuminated cells. Frequency continuation fits low-passed data
first (both observed and simulated go through the same filter), which keeps the early
updates smooth and away from cycle-skipped minima.

Recorded (field) data have their own source wavelet and amplitude scale: build the physics
with ``wavelet="estimate"`` (``fwi refine --wavelet estimate``) and every misfit compares the
recorded gathers with the simulation after the matching filter that best turns the
survey's wavelet into theirs (:mod:`fwi_plugins.wavelet`), re-estimated for each model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, OptionError

__all__ = ["STEPS", "RefineResult", "gaussian_blur", "lowpass", "refine"]

#: The update rules :func:`refine` offers.
STEPS = ("normalized", "adam")


@dataclass
class RefineResult:
    """What :func:`refine` returns.

    Attributes:
        velocity: the refined model in m/s, float32, shaped like the initial model.
        history: the misfit at each iteration, evaluated before that iteration's update
            (on the stage's low-passed data during frequency continuation).
        initial_misfit: full-band misfit of the starting model.
        final_misfit: full-band misfit of the refined model.
        stages: ``(cutoff_hz or None, iterations)`` for each frequency stage; ``None`` is
            the full band.
    """

    velocity: np.ndarray
    history: list[float]
    initial_misfit: float
    final_misfit: float
    stages: list[tuple[float | None, int]] = field(default_factory=list)

    @property
    def reduction(self) -> float:
        """Fraction of the starting misfit removed (1.0: perfect fit)."""
        if self.initial_misfit == 0:
            return 0.0
        return 1.0 - self.final_misfit / self.initial_misfit

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as JSON-able data."""
        return {"history": list(self.history), "initial_misfit": self.initial_misfit,
                "final_misfit": self.final_misfit, "reduction": self.reduction,
                "stages": [{"cutoff_hz": f, "iterations": n} for f, n in self.stages]}


def lowpass(data: torch.Tensor, cutoff: float, dt: float, *, dim: int = -2) -> torch.Tensor:
    """Zero-phase low-pass filter along ``dim`` (time) with a cosine taper.

    The response is 1 below ``cutoff``, falls smoothly to 0 at ``1.5 * cutoff`` and is
    applied in the frequency domain, so arrivals keep their times; the taper avoids the
    ringing of a brick-wall filter. Differentiable.

    Args:
        data: gathers, time along ``dim``.
        cutoff: corner frequency in Hz.
        dt: time sample interval in seconds.
        dim: the time dimension.

    Returns:
        The filtered tensor, same shape and dtype.
    """
    n = data.shape[dim]
    # Padding to twice the length keeps the filter from wrapping late energy onto early times.
    n_fft = 2 * n
    freqs = torch.fft.rfftfreq(n_fft, d=dt, device=data.device)
    ramp = ((freqs - cutoff) / (0.5 * cutoff)).clamp(0.0, 1.0)
    response = (0.5 * (1.0 + torch.cos(torch.pi * ramp))).to(data.dtype)
    shape = [1] * data.ndim
    shape[dim] = response.numel()
    spectrum = torch.fft.rfft(data, n=n_fft, dim=dim) * response.view(shape)
    return torch.fft.irfft(spectrum, n=n_fft, dim=dim).narrow(dim, 0, n)


def _as_tensor(value: Any, name: str, ndim: int, device: torch.device) -> tuple[torch.Tensor, tuple[int, ...]]:
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


def _stages(iterations: int, frequencies: Sequence[float] | None) -> list[tuple[float | None, int]]:
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


def _normalized_step(param: torch.Tensor, lr: float) -> None:
    """Steepest descent with each model's largest update set to ``lr``."""
    with torch.no_grad():
        grad = param.grad
        peak = grad.abs().amax(dim=tuple(range(1, grad.ndim)), keepdim=True)
        param -= lr * grad / peak.clamp_min(torch.finfo(grad.dtype).tiny)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(N, C, Z, X)`` images; edges are reflected."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.sum()
    n, c, z, w = images.shape
    flat = images.reshape(n * c, 1, z, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect" if w > radius else "replicate"),
                    g.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect" if z > radius else "replicate"),
                    g.view(1, 1, -1, 1))
    return flat.reshape(n, c, z, w)


def refine(
    initial: Any,
    observed: Any,
    *,
    physics: Any,
    iterations: int = 50,
    lr: float = 0.01,
    step: str = "normalized",
    vmin: float | None = None,
    vmax: float | None = None,
    frequencies: Sequence[float] | None = None,
    smooth: float = 0.0,
    device: str | torch.device | None = None,
    progress: bool = True,
    callback: Callable[[int, float, torch.Tensor], None] | None = None,
) -> RefineResult:
    """Refine velocity models by gradient-based FWI through a physics plugin.

    Args:
        initial: starting velocity in m/s, ``(N, 1, Z, X)``, ``(1, Z, X)`` or ``(Z, X)``;
            numpy array or tensor.
        observed: recorded gathers ``(N, S, T, R)`` or ``(S, T, R)`` matching the physics'
            survey.
        physics: a built physics object (:class:`fwi_plugins.physics.Physics`).
        iterations: number of gradient steps in all.
        lr: step size as a fraction of ``vmax - vmin`` (the default 0.01 of 1500..4500 m/s
            is at most 30 m/s per cell per step).
        step: ``"normalized"`` (steepest descent, each model's gradient scaled to a largest
            entry of ``lr``) or ``"adam"`` (Adam, which moves every cell about ``lr``).
        vmin, vmax: velocity bounds in m/s; default the survey's range.
        frequencies: low-pass cutoffs in Hz for frequency continuation, fitted from low
            to high with the iterations split evenly; ``None`` fits the full band.
        smooth: standard deviation in grid cells of a Gaussian that smooths the gradient
            before each step (0: none). Adam scales every cell's step alike, so cells the
            data barely constrain move as far as the rest; smoothing the gradient keeps the
            update as smooth as the wavelengths that can resolve it.
        device: where to compute; default the initial tensor's device (CPU for numpy),
            ``"auto"`` picks CUDA when present.
        progress: show a progress bar.
        callback: called as ``callback(iteration, misfit, velocity)`` after each step,
            with the current model as a detached tensor.

    Returns:
        A :class:`RefineResult` with the refined model shaped like ``initial``.

    Raises:
        DataError: inputs of the wrong shape or not matching each other.
        OptionError: bad iterations, step size, bounds or frequencies.
    """
    survey = physics.survey
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device is None:
        device = initial.device if isinstance(initial, torch.Tensor) else "cpu"
    device = torch.device(device)
    v0, original_shape = _as_tensor(initial, "initial velocity", 4, device)
    d_obs, _ = _as_tensor(observed, "observed gathers", 4, device)
    expected = (survey.n_shots, survey.nt, survey.n_receivers)
    if tuple(d_obs.shape[1:]) != expected:
        raise DataError(f"refine: observed gathers have (shot, time, receiver) = {tuple(d_obs.shape[1:])}, "
                        f"the survey expects {expected}")
    if v0.shape[1] != 1:
        raise DataError(f"refine: initial velocity must have one channel, shape {tuple(v0.shape)}")
    if v0.shape[0] != d_obs.shape[0]:
        raise DataError(f"refine: {v0.shape[0]} initial model(s) but {d_obs.shape[0]} set(s) of observed gathers")
    lo = float(survey.vmin if vmin is None else vmin)
    hi = float(survey.vmax if vmax is None else vmax)
    if not 0 < lo < hi:
        raise OptionError(f"refine: velocity bounds must satisfy 0 < vmin < vmax, got {lo:g} and {hi:g}")
    if not lr > 0:
        raise OptionError(f"refine: lr must be positive, got {lr}")
    if step not in STEPS:
        raise OptionError(f"refine: step {step!r} is not known; expected one of {', '.join(STEPS)}")
    if not (np.isfinite(smooth) and smooth >= 0):
        raise OptionError(f"refine: smooth must be a finite number of grid cells >= 0, got {smooth}")
    stages = _stages(iterations, frequencies)

    scale = hi - lo
    # Optimising v / (vmax - vmin) makes lr a fraction of the velocity range, whatever the units.
    param = (v0.clamp(lo, hi) / scale).requires_grad_(True)
    optimizer = torch.optim.Adam([param], lr=lr) if step == "adam" else None

    def objective(cutoff: float | None) -> torch.Tensor:
        simulated = physics.simulate(param * scale)
        if cutoff is None:
            return physics.misfit(simulated, d_obs)
        return physics.misfit(lowpass(simulated, cutoff, survey.dt), lowpass(d_obs, cutoff, survey.dt))

    with torch.no_grad():
        initial_misfit = float(objective(None))

    history: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=iterations, desc="refine", unit="it", leave=False)
    step = 0
    try:
        for cutoff, n_iter in stages:
            if cutoff is not None:
                filtered_obs = lowpass(d_obs, cutoff, survey.dt)
            for _ in range(n_iter):
                param.grad = None
                simulated = physics.simulate(param * scale)
                if cutoff is None:
                    loss = physics.misfit(simulated, d_obs)
                else:
                    loss = physics.misfit(lowpass(simulated, cutoff, survey.dt), filtered_obs)
                loss.backward()
                if smooth > 0:
                    param.grad = gaussian_blur(param.grad, smooth)
                if optimizer is not None:
                    optimizer.step()
                else:
                    _normalized_step(param, lr)
                with torch.no_grad():
                    param.clamp_(lo / scale, hi / scale)
                value = float(loss.detach())
                history.append(value)
                step += 1
                if bar is not None:
                    bar.set_postfix(misfit=f"{value:.3e}", band=f"{cutoff:g} Hz" if cutoff else "full")
                    bar.update()
                if callback is not None:
                    callback(step, value, (param.detach() * scale))
    finally:
        if bar is not None:
            bar.close()

    with torch.no_grad():
        final_misfit = float(objective(None))
        velocity = (param.detach() * scale).cpu().numpy().astype(np.float32)
    return RefineResult(velocity=velocity.reshape(original_shape), history=history,
                        initial_misfit=initial_misfit, final_misfit=final_misfit, stages=stages)
