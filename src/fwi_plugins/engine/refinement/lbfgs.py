"""L-BFGS with a strong-Wolfe line search for refinement, one model at a time, within a budget.

:func:`lbfgs_minimize` wraps :class:`torch.optim.LBFGS` for an objective that costs a wave
simulation per evaluation: the budget counts evaluations (not iterations, which may take
several), an optional wall-clock limit stops it between evaluations, and since a stop can
fall inside a line search, the best point evaluated is the one kept.

The variable is scaled so that the first trial step, which torch takes as ``-g / |g|_1``,
moves cells by ``first_step`` on average rather than by a problem-dependent amount; the line
search then chooses its length, and later steps take their scale from the curvature pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LbfgsOutcome", "lbfgs_minimize"]


class _Stop(Exception):
    """Raised inside the closure to end the optimisation between evaluations."""


@dataclass
class LbfgsOutcome:
    """The best point of :func:`lbfgs_minimize` and what it cost."""

    x: torch.Tensor
    value: float
    evaluations: int


def lbfgs_minimize(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    max_evaluations: int,
    first_step: float,
    history_size: int = 10,
    deadline: float | None = None,
    on_evaluation: Callable[[torch.Tensor, float], None] | None = None,
) -> LbfgsOutcome:
    """Minimise ``objective(x)`` from ``x0`` by L-BFGS with a strong-Wolfe line search.

    Args:
        objective: differentiable scalar function of a tensor shaped like ``x0``.
        x0: the starting point (not modified).
        max_evaluations: objective-and-gradient evaluations in all, at least 1.
        first_step: mean absolute change per entry of the first trial step.
        history_size: curvature pairs kept.
        deadline: a :func:`time.perf_counter` time after which no evaluation starts.
        on_evaluation: called as ``on_evaluation(x, value)`` after each evaluation, with
            the point evaluated (detached).

    Returns:
        The lowest point evaluated, its value and the number of evaluations.
    """
    # x = x0 + scale * y: torch's first step in y is -g_y / |g_y|_1, which moves x by
    # scale in L1 norm; scale = first_step * x.numel() makes that first_step per entry.
    scale = first_step * x0.numel()
    y = torch.zeros_like(x0, requires_grad=True)
    optimizer = torch.optim.LBFGS([y], lr=1.0, max_iter=max_evaluations, max_eval=max_evaluations,
                                  history_size=history_size, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-12, tolerance_change=1e-12)
    best = LbfgsOutcome(x=x0.detach().clone(), value=float("inf"), evaluations=0)

    def closure() -> torch.Tensor:
        if best.evaluations >= max_evaluations or (
                best.evaluations and deadline is not None and time.perf_counter() > deadline):
            raise _Stop
        optimizer.zero_grad()
        x = x0 + scale * y
        value = objective(x)
        value.backward()
        best.evaluations += 1
        number = float(value.detach())
        if number < best.value:
            best.x, best.value = x.detach().clone(), number
        if on_evaluation is not None:
            on_evaluation(x.detach(), number)
        return value

    try:
        optimizer.step(closure)
    except _Stop:
        pass
    return best
