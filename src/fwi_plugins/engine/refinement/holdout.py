"""Held-out shots decide what refinement returns: early stopping per map, and "do no harm".

A refinement that lowers the data misfit of the shots it inverts can still make the model
worse: from a wrong start it fits the data with streaks the truth does not have. Shots it
does not invert tell the two apart, because noise painted to fit some shots does not
predict the others. :func:`holdout_shots` picks the held-out shots (every other shot from
the second: with 5 shots, the 2nd; with ``holdout=2``, the 2nd and 4th), the refinement
inverts the rest, and :class:`HeldOut` watches the held-out misfit of every model the loops
evaluate (from the same simulation: the physics simulates every shot anyway, so watching
costs no extra simulation). Each map gets the model with the lowest held-out misfit seen,
unless that is not lower than its starting model's by ``margin``: then the start is
returned unchanged and the map is flagged ``kept_start``.
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import OptionError

__all__ = ["HeldOut", "holdout_shots"]


def holdout_shots(n_shots: int, holdout: int | None) -> list[int]:
    """The indices of the held-out shots: ``holdout`` of them, every other shot from the second.

    ``None`` and ``0`` hold out none (the default: measured on the shipped network's
    predictions, inverting one shot fewer cost more on maps refinement improves than the rule
    saved on maps it worsens; see the README's refinement section).

    Raises:
        OptionError: ``holdout`` is not a whole number, or leaves no room for inverted shots
            on both sides of each held-out one.
    """
    if holdout is None:
        holdout = 0
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 0:
        raise OptionError(f"refine: holdout must be a whole number of shots >= 0 (0: none), got {holdout!r}")
    most = (n_shots - 1) // 2
    if holdout > most:
        raise OptionError(f"refine: holdout {holdout} is too many for a survey of {n_shots} shot(s): "
                          f"every other shot from the second is held out, so at most {most}")
    return [1 + 2 * j for j in range(holdout)]


class HeldOut:
    """The held-out misfit of every model evaluated, and the best model of each map.

    Models are in units of the velocity range (as the loops hold them); ``observed`` is the
    full-band recording of every shot ``(N, S, T, R)``.
    """

    def __init__(self, physics: Any, observed: torch.Tensor, shots: list[int], *, margin: float) -> None:
        if not (0 <= margin < 1):
            raise OptionError(f"refine: holdout_margin must be in [0, 1), got {margin!r}")
        self.physics, self.shots, self.margin = physics, shots, margin
        self.observed = observed[:, shots]
        self.inverted = [s for s in range(observed.shape[1]) if s not in shots]
        n = len(observed)
        self.history: list[list[float]] = [[] for _ in range(n)]
        self.best: list[float] = [float("inf")] * n
        self.best_model: list[torch.Tensor | None] = [None] * n
        self.best_evaluation: list[int] = [0] * n

    def observe(self, offset: int, models: torch.Tensor, simulated: torch.Tensor) -> None:
        """Record the held-out misfit of ``models`` (maps ``offset``, ``offset + 1``, ...) from their simulation."""
        with torch.no_grad():
            held = simulated.detach()[:, self.shots]
            for i in range(len(models)):
                k = offset + i
                value = float(self.physics.misfit(held[i:i + 1], self.observed[k:k + 1]))
                self.history[k].append(value)
                if value < self.best[k]:
                    self.best[k], self.best_evaluation[k] = value, len(self.history[k]) - 1
                    self.best_model[k] = models[i:i + 1].detach().clone()

    def start_misfit(self, k: int) -> float:
        return self.history[k][0]

    def kept_start(self, k: int) -> bool:
        """Whether map ``k`` keeps its start: no model beat the start's held-out misfit by ``margin``."""
        return not self.best[k] < self.start_misfit(k) * (1.0 - self.margin)

    def choose(self, start: torch.Tensor, scale: float) -> torch.Tensor:
        """Per map, the best model seen in m/s, or ``start`` (m/s, unchanged) where it is kept."""
        chosen = start.clone()
        for k in range(len(chosen)):
            model = self.best_model[k]
            if not self.kept_start(k) and model is not None:
                chosen[k:k + 1] = model.to(chosen.dtype) * scale
        return chosen

    def summary(self) -> dict[str, Any]:
        """The per-map fields of :class:`~fwi_plugins.engine.refinement.result.RefineResult`."""
        n = len(self.history)
        kept = [self.kept_start(k) for k in range(n)]
        return {"holdout_shots": list(self.shots), "kept_start": kept,
                "holdout_misfit_start": [self.start_misfit(k) for k in range(n)],
                "holdout_misfit_end": [self.start_misfit(k) if kept[k] else self.best[k] for k in range(n)],
                "best_evaluation": [0 if kept[k] else self.best_evaluation[k] for k in range(n)],
                "holdout_history": [list(h) for h in self.history]}
