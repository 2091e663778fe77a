"""Physics-based refinement: full-waveform inversion of velocity from a starting model.

Typical use is to polish a network's prediction so that it explains the recorded data::

    from fwi_plugins import api
    from fwi_plugins.engine.refinement.refine import refine

    physics = api.build_physics("deepwave", survey=api.Survey.openfwi())
    result = refine(predicted, observed, physics=physics, iterations=50)  # shaped L-BFGS
    result.velocity, result.history

The velocity is optimised in units of the allowed velocity range and projected back into
``[vmin, vmax]`` after every step. ``step="normalized"`` is steepest descent with each
model's gradient scaled so that its largest entry moves ``lr``: the update keeps the
gradient's shape, so cells the data barely constrain barely move. ``step="adam"`` moves
every cell about ``lr`` per step whatever its gradient; it lowers the misfit faster but
leaves high-wavenumber noise in poorly illuminated cells. ``step="lbfgs"`` is a
quasi-Newton method (:mod:`fwi_plugins.engine.refinement.lbfgs`): its curvature pairs and
line search take far larger useful steps than steepest descent for the same simulations.

``step="lbfgs"`` with its shaping
(:data:`~fwi_plugins.engine.refinement.inputs.SHAPING_DEFAULTS`: mute 3, smooth 2, depth_power
1, tv 0.02) is the default because it is the rule that improved a network's prediction, not only
its misfit, when the rules were compared (``benchmarks/bench_refine.py``; figures in
docs/results.md).

Three things shape the update whatever the rule (:mod:`fwi_plugins.engine.refinement.terms`):
``mute`` leaves the rows at the sources and receivers alone, where the gradient is largest
and least meaningful; ``depth_power`` restores the deep part the gradient underweights;
``smooth`` keeps the update as smooth as the wavelengths can resolve (with Adam, which moves
every cell alike, it keeps the poorly constrained cells from moving noisily). ``prior`` (distance
from the start) and ``tv`` (total variation) add regularisation to the misfit. Frequency
continuation fits low-passed data first (both observed and simulated go through the same
filter), which keeps the early updates smooth and away from cycle-skipped minima.

Recorded (field) data have their own source wavelet and amplitude scale: build the physics
with ``wavelet="estimate"`` (``fwi refine --wavelet estimate``) and every misfit compares the
recorded gathers with the simulation after the matching filter that best turns the
survey's wavelet into theirs (:mod:`fwi_plugins.wavelet`), re-estimated for each model.

:func:`refine` checks its arguments with :mod:`fwi_plugins.engine.refinement.inputs` and runs the
rule's loop from :mod:`fwi_plugins.engine.refinement.loops`.

The arguments that shape and regularise the update, in full:

* ``step``: ``"normalized"`` (steepest descent, each model's gradient scaled to a largest
  entry of ``lr``), ``"adam"`` (Adam, which moves every cell about ``lr``) or ``"lbfgs"``
  (L-BFGS with a strong-Wolfe line search, each model on its own; the lowest objective
  evaluated is kept). ``"lbfgs"``, the default, with its shaping defaults improves a
  network's prediction most (SSIM and MAE, not only the misfit; the figures are above).
* ``smooth``: standard deviation in grid cells of a Gaussian that smooths the update (0:
  none). ``smooth``, ``mute``, ``depth_power`` and ``tv`` left at ``None`` take the step's
  values in :data:`~fwi_plugins.engine.refinement.inputs.SHAPING_DEFAULTS` (for ``"lbfgs"``:
  2, 3, 1 and 0.02; for the descent rules: 0, none of them).
* ``mute``: rows from the top (the sources' and receivers' depth at the surface) that the
  update leaves unchanged, followed by a cosine taper over as many rows; 0 updates every row.
* ``depth_power``: scale the update of row ``z`` by ``((z + 1) / Z) ** depth_power`` to
  offset the gradient's decay with depth (0: none).
* ``prior``: weight of the mean squared distance from ``initial`` (in units of the velocity
  range) against the data misfit, which is then divided by its value at the start of each
  frequency stage: 0 leaves the misfit alone, larger keeps the model nearer the start where
  the data do not ask for a change.
* ``tv``: weight of the total variation (mean gradient magnitude per cell, in units of the
  velocity range), on the same normalised misfit: favours blocky models.
* ``sobolev``: weight of the mean squared gradient (range units per cell), on the same
  normalised misfit: favours smooth models, punishes streaks.
* ``regularization``: ``"given"`` regularises by ``tv`` and ``sobolev`` as passed; ``"auto"``
  (held-out shots needed) refines once per candidate of
  :data:`~fwi_plugins.engine.refinement.select.CANDIDATES` (none, TV, smoothness, at two
  weights each) and returns the one whose maps predict the held-out shots best, one choice
  for all maps (:mod:`fwi_plugins.engine.refinement.select`); it costs that many refinements.
* ``holdout``: shots held out of the inversion to decide what it returns
  (:mod:`fwi_plugins.engine.refinement.holdout`): every other shot from the second, this
  many (``None``: one where the survey has at least 3 shots; 0: none). Each map then gets
  the model evaluated with the lowest misfit on the held-out shots (early stopping), or its
  start unchanged where none beat the start's by ``holdout_margin`` (a fraction of the
  start's held-out misfit); the result flags those maps ``kept_start``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .filters import lowpass
from .holdout import HeldOut, holdout_shots
from .inputs import (check_data, check_shaping, check_time_limit, pick_device, resolve_shaping, stages,
                     velocity_bounds)
from .loops import Loop, Objective, ProgressBar, refine_descent, refine_lbfgs
from .result import RefineResult
from .select import check_sobolev, select_regularization

__all__ = ["refine"]


def refine(initial: Any, observed: Any, *, physics: Any, iterations: int = 50, lr: float = 0.01,
           step: str = "lbfgs", vmin: float | None = None, vmax: float | None = None,
           frequencies: Sequence[float] | None = None, smooth: float | None = None, mute: int | None = None,
           depth_power: float | None = None, prior: float = 0.0, tv: float | None = None, sobolev: float = 0.0,
           regularization: str = "given", time_limit: float | None = None, holdout: int | None = None,
           holdout_margin: float = 0.01, device: str | torch.device | None = None, progress: bool = True,
           callback: Callable[[int, float, torch.Tensor], None] | None = None) -> RefineResult:
    """Refine velocity models by gradient-based FWI through a physics plugin.

    Args:
        initial: starting velocity in m/s, ``(N, 1, Z, X)``, ``(1, Z, X)`` or ``(Z, X)``; array or tensor.
        observed: recorded gathers ``(N, S, T, R)`` or ``(S, T, R)`` matching the physics' survey.
        physics: a built physics object (:class:`fwi_plugins.physics.Physics`).
        iterations: gradient steps in all; with ``step="lbfgs"``, misfit-and-gradient evaluations per
            model (an L-BFGS iteration may take several), so every rule costs about the same.
        lr: step size as a fraction of ``vmax - vmin`` (0.01 of 1500..4500 m/s: at most 30 m/s per
            cell per step); for ``"lbfgs"``, the mean move per cell of its first trial step.
        step, smooth, mute, depth_power, prior, tv, sobolev, regularization, holdout: the update
            rule, its shaping and regularisation, and the held-out shots; see the module's description.
        vmin, vmax: velocity bounds in m/s; default the survey's range.
        frequencies: low-pass cutoffs in Hz for frequency continuation, fitted from low to high
            with the iterations split evenly; ``None`` fits the full band.
        time_limit: wall-clock seconds per model after which refinement stops, keeping the model
            reached (``None``: no limit); with frequency stages, each gets its iterations' share.
        holdout_margin: how much lower (a fraction of the start's) the held-out misfit must go.
        device: default the initial tensor's device (CPU for numpy); ``"auto"`` picks CUDA.
        progress: show a progress bar.
        callback: ``callback(iteration, misfit, velocity)`` after each step (each evaluation with
            ``"lbfgs"``), with the current models as a detached tensor.

    Returns:
        A :class:`RefineResult` with the refined model shaped like ``initial``.

    Raises:
        DataError: inputs of the wrong shape or not matching each other.
        OptionError: bad iterations, step size, bounds, frequencies or regularisation.
    """
    if regularization == "auto":
        given = dict(locals())  # the arguments, before anything else is bound here
        return select_regularization(lambda weights: refine(**{**given, **weights, "regularization": "given"}))
    check_sobolev(sobolev, regularization)
    survey = physics.survey
    v0, original_shape, d_obs = check_data(initial, observed, survey, pick_device(device, initial))
    lo, hi = velocity_bounds(survey, vmin, vmax, lr)
    shaping = resolve_shaping(step, mute=mute, smooth=smooth, depth_power=depth_power, tv=tv)
    preconditioner = check_shaping(shaping, prior, v0.shape[-2])
    check_time_limit(time_limit)
    plan = stages(iterations, frequencies)
    shots = holdout_shots(survey.n_shots, holdout)
    held_out = HeldOut(physics, d_obs, shots, margin=holdout_margin) if shots else None
    scale = hi - lo
    start, initial_misfit = _start(v0, physics, d_obs, lo=lo, hi=hi, held_out=held_out)
    bar = ProgressBar(iterations * (len(start) if step == "lbfgs" else 1), enabled=progress)
    loop = Loop(stages=plan, objective=Objective(physics, scale=scale, prior=prior, tv=shaping["tv"],
                                                 sobolev=sobolev, held_out=held_out),
                filtered=_filtered(d_obs, held_out, plan, survey.dt), preconditioner=preconditioner, lr=lr,
                lo=lo / scale, hi=hi / scale, time_limit=time_limit, report=bar, callback=callback)
    param, history = _run(start, loop, step=step, bar=bar)
    return _result(param, held_out, v0=v0, physics=physics, d_obs=d_obs, scale=scale, history=history,
                   initial_misfit=initial_misfit, plan=plan, original_shape=original_shape, lbfgs=step == "lbfgs")


def _start(v0: torch.Tensor, physics: Any, d_obs: torch.Tensor, *, lo: float, hi: float,
           held_out: HeldOut | None) -> tuple[torch.Tensor, float]:
    """The start in units of the velocity range, and its full-band misfit (recorded on the held-out shots)."""
    scale = hi - lo
    # Optimising v / (vmax - vmin) makes lr a fraction of the velocity range, whatever the units.
    start = v0.clamp(lo, hi) / scale
    with torch.no_grad():
        simulated = physics.simulate(start * scale)
        initial_misfit = float(physics.misfit(simulated, d_obs))
        if held_out is not None:
            held_out.observe(0, start, simulated)
    return start, initial_misfit


def _filtered(d_obs: torch.Tensor, held_out: HeldOut | None, plan: list[tuple[float | None, int]],
              dt: float) -> dict[float | None, torch.Tensor]:
    """The data each frequency stage fits: the inverted shots' gathers, low-passed to the stage's cutoff."""
    # The loops see only the inverted shots' data; the held-out ones stay with `held_out`.
    d_fit = d_obs[:, held_out.inverted] if held_out is not None else d_obs
    return {cutoff: d_fit if cutoff is None else lowpass(d_fit, cutoff, dt) for cutoff, _ in plan}


def _run(start: torch.Tensor, loop: Loop, *, step: str, bar: ProgressBar) -> tuple[torch.Tensor, list[float]]:
    """The rule's loop from ``start``; the models reached and the misfit history. The progress bar is closed after."""
    try:
        return refine_lbfgs(start, loop) if step == "lbfgs" else refine_descent(start, loop, adam=step == "adam")
    finally:
        bar.close()


def _result(param: torch.Tensor, held_out: HeldOut | None, *, v0: torch.Tensor, physics: Any, d_obs: torch.Tensor,
            scale: float, history: list[float], initial_misfit: float, plan: list[tuple[float | None, int]],
            original_shape: tuple[int, ...], lbfgs: bool) -> RefineResult:
    """The refined models (with held-out shots: each map's best by them, or its start) and their misfits."""
    with torch.no_grad():
        velocity = param.detach() * scale
        if held_out is not None:
            if not lbfgs:
                # A descent loop's last step was never simulated; L-BFGS ends on a model it evaluated.
                held_out.observe(0, param, physics.simulate(velocity))
            velocity = held_out.choose(v0, scale)
        final_misfit = float(physics.misfit(physics.simulate(velocity), d_obs))
    extra = held_out.summary() if held_out is not None else {"kept_start": [False] * len(velocity)}
    return RefineResult(velocity=velocity.cpu().numpy().astype(np.float32).reshape(original_shape),
                        history=history, initial_misfit=initial_misfit, final_misfit=final_misfit, stages=plan,
                        **extra)
