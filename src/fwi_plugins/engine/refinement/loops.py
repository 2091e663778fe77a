"""The loops of :func:`~fwi_plugins.engine.refinement.refine.refine`: each update rule through the frequency stages.

:class:`Objective` is the data misfit of models in units of the velocity range (simulated
data low-passed like the observed ones in each stage) and the regularisation asked for.
:func:`refine_descent` steps the whole batch together by the normalised-gradient or Adam
rule; :func:`refine_lbfgs` runs L-BFGS (:mod:`fwi_plugins.engine.refinement.lbfgs`) on each model
alone through the preconditioner as a change of variables. Both stop a stage at its share of
the time limit and tell :class:`ProgressBar` and the caller's callback after every evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .filters import lowpass
from .lbfgs import lbfgs_minimize
from .terms import Preconditioner, prior_penalty, sobolev_penalty, total_variation

if TYPE_CHECKING:
    from .holdout import HeldOut

__all__ = ["Loop", "Objective", "ProgressBar", "refine_descent", "refine_lbfgs"]

Stages = list[tuple["float | None", int]]
Callback = Callable[[int, float, torch.Tensor], None]


class Objective:
    """What the loops minimise: the physics' data misfit plus ``prior``, ``tv`` and ``sobolev`` regularisation.

    With ``held_out`` the misfit is that of its inverted shots only (the observed data the
    loops pass hold only those), and every simulation asked for with an ``offset`` also
    tells ``held_out`` the misfit of the shots left out.
    """

    def __init__(self, physics: Any, *, scale: float, prior: float, tv: float, sobolev: float = 0.0,
                 held_out: HeldOut | None = None) -> None:
        self.physics, self.scale, self.prior, self.tv, self.sobolev = physics, scale, prior, tv, sobolev
        self.dt = physics.survey.dt
        self.regularised = prior > 0 or tv > 0 or sobolev > 0
        self.held_out = held_out

    def misfits(self, param: torch.Tensor, cutoff: float | None, observed: torch.Tensor, *,
                offset: int | None = None) -> tuple[torch.Tensor, ...]:
        """(batch misfit as the physics defines it, per-model misfits when regularised).

        ``offset``: the index of ``param[0]`` among the maps, for the held-out record;
        ``None`` records nothing (a reference value, not an evaluation of the loop).
        """
        simulated = self.physics.simulate(param * self.scale)
        if self.held_out is not None:
            if offset is not None:
                self.held_out.observe(offset, param, simulated)
            simulated = simulated[:, self.held_out.inverted]
        if cutoff is not None:
            simulated = lowpass(simulated, cutoff, self.dt)
        whole = self.physics.misfit(simulated, observed)
        if not self.regularised:
            return (whole,)
        return whole, torch.stack([self.physics.misfit(simulated[i:i + 1], observed[i:i + 1])
                                   for i in range(len(param))])

    def penalty(self, param: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Per-model regularisation against the start of the whole refinement."""
        total = torch.zeros(len(param), device=param.device, dtype=param.dtype)
        if self.prior > 0:
            total = total + self.prior * prior_penalty(param, first)
        if self.tv > 0:
            total = total + self.tv * total_variation(param)
        if self.sobolev > 0:
            total = total + self.sobolev * sobolev_penalty(param)
        return total


class ProgressBar:
    """A tqdm bar of ``total`` evaluations showing the misfit and the band, or nothing when not ``enabled``."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="refine", unit="it", leave=False)

    def __call__(self, value: float, cutoff: float | None) -> None:
        if self.bar is not None:
            self.bar.set_postfix(misfit=f"{value:.3e}", band=f"{cutoff:g} Hz" if cutoff else "full")
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class Loop:
    """What every rule's loop needs, the models in units of the velocity range (``lo``, ``hi`` too)."""

    stages: Stages
    filtered: dict[float | None, torch.Tensor]
    objective: Objective
    preconditioner: Preconditioner
    lr: float
    lo: float
    hi: float
    time_limit: float | None
    report: Callable[[float, float | None], None]
    callback: Callback | None


def stage_deadlines(stages: Stages, time_limit: float | None, n_models: int) -> list[float | None]:
    """When each stage must end, for ``n_models`` refined one after another from now."""
    if time_limit is None:
        return [None] * len(stages)
    now = time.perf_counter()
    total = sum(n for _, n in stages)
    done = 0
    deadlines: list[float | None] = []
    for _, n in stages:
        done += n
        deadlines.append(now + time_limit * n_models * done / total)
    return deadlines


def _normalized_step(param: torch.Tensor, lr: float) -> None:
    """Steepest descent with each model's largest update set to ``lr``."""
    with torch.no_grad():
        grad = param.grad
        assert grad is not None
        peak = grad.abs().amax(dim=tuple(range(1, grad.ndim)), keepdim=True)
        param -= lr * grad / peak.clamp_min(torch.finfo(grad.dtype).tiny)


def refine_descent(start: torch.Tensor, loop: Loop, *, adam: bool) -> tuple[torch.Tensor, list[float]]:
    """The normalised-gradient and Adam rules: every model of the batch steps together."""
    param = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([param], lr=loop.lr) if adam else None
    objective = loop.objective
    history: list[float] = []
    # The batch steps together, so it has the time of all its models.
    for (cutoff, n_iter), deadline in zip(loop.stages, stage_deadlines(loop.stages, loop.time_limit, len(start))):
        observed = loop.filtered[cutoff]
        reference = None
        for i in range(n_iter):
            if i and deadline is not None and time.perf_counter() > deadline:
                break
            param.grad = None
            parts = objective.misfits(param, cutoff, observed, offset=0)
            if objective.regularised:
                per_model = parts[1]
                if reference is None:
                    reference = per_model.detach()
                    reference = torch.where(reference > 0, reference, torch.ones_like(reference))
                loss = (per_model / reference + objective.penalty(param, start)).sum()
            else:
                loss = parts[0]
            loss.backward()
            assert param.grad is not None
            param.grad = loop.preconditioner.gradient(param.grad)
            if optimizer is not None:
                optimizer.step()
            else:
                _normalized_step(param, loop.lr)
            with torch.no_grad():
                param.clamp_(loop.lo, loop.hi)
            value = float(parts[0].detach())
            history.append(value)
            loop.report(value, cutoff)
            if loop.callback is not None:
                loop.callback(len(history), value, param.detach() * objective.scale)
    return param.detach(), history


def refine_lbfgs(start: torch.Tensor, loop: Loop) -> tuple[torch.Tensor, list[float]]:
    """L-BFGS on each model alone, through the preconditioner as a change of variables."""
    current = start.clone()
    per_model: list[list[float]] = []
    count = 0
    for k in range(len(start)):
        values: list[float] = []
        for (cutoff, n_iter), deadline in zip(loop.stages, stage_deadlines(loop.stages, loop.time_limit, 1)):
            stage = _LbfgsStage(loop, k=k, current=current, first=start[k:k + 1].clone(), cutoff=cutoff)

            def evaluated(model: torch.Tensor, misfit: float, cutoff: float | None = cutoff,
                          values: list[float] = values) -> None:
                nonlocal count
                count += 1
                values.append(misfit)
                loop.report(misfit, cutoff)
                if loop.callback is not None:
                    loop.callback(count, misfit, current * loop.objective.scale)

            stage.run(n_iter, deadline=deadline, on_evaluation=evaluated)
        per_model.append(values)
    # One entry per evaluation, averaged over the models (each holding its last value once done).
    longest = max(len(v) for v in per_model)
    history = [float(np.mean([v[min(i, len(v) - 1)] for v in per_model])) for i in range(longest)]
    return current, history


class _LbfgsStage:
    """One model, one frequency band: L-BFGS on ``u`` for the model ``clamp(base + P u)``."""

    def __init__(self, loop: Loop, *, k: int, current: torch.Tensor, first: torch.Tensor,
                 cutoff: float | None) -> None:
        self.loop, self.k, self.current, self.first, self.cutoff = loop, k, current, first, cutoff
        self.objective = loop.objective
        self.observed = loop.filtered[cutoff][k:k + 1]
        self.base = current[k:k + 1].clone()
        self.reference = 1.0
        if self.objective.regularised:
            # The data term starts at 1 in every stage, so the weights mean the same in each band.
            with torch.no_grad():
                start = float(self.objective.misfits(self.base, cutoff, self.observed)[0])
            # A start that fits the data exactly (misfit 0) is left unnormalised rather than divided by ~0.
            self.reference = start if start > 0 else 1.0
        self.last_misfit = math.nan

    def model(self, u: torch.Tensor) -> torch.Tensor:
        return (self.base + self.loop.preconditioner.parameterize(u)).clamp(self.loop.lo, self.loop.hi)

    def value(self, u: torch.Tensor) -> torch.Tensor:
        model = self.model(u)
        data = self.objective.misfits(model, self.cutoff, self.observed, offset=self.k)[0]
        self.last_misfit = float(data.detach())
        if not self.objective.regularised:
            return data
        return data / self.reference + self.objective.penalty(model, self.first).sum()

    def run(self, evaluations: int, *, deadline: float | None,
            on_evaluation: Callable[[torch.Tensor, float], None]) -> None:
        """Optimise, leaving the best model found in ``current[k]``."""
        k = self.k

        def evaluated(u: torch.Tensor, value: float) -> None:
            with torch.no_grad():
                self.current[k:k + 1] = self.model(u)
            on_evaluation(self.current[k:k + 1], self.last_misfit)

        outcome = lbfgs_minimize(self.value, torch.zeros_like(self.base), max_evaluations=evaluations,
                                 first_step=self.loop.lr, deadline=deadline, on_evaluation=evaluated)
        with torch.no_grad():
            self.current[k:k + 1] = self.model(outcome.x)
