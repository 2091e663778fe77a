"""What :func:`~fwi_plugins.engine.refinement.refine.refine` returns: the model and the record of how it was found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RefineResult"]


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
        kept_start: per map, whether it was returned unchanged because no model evaluated
            beat its start on the held-out shots (always ``False`` without held-out shots).
        holdout_shots: the indices of the held-out shots (empty: none).
        holdout_misfit_start, holdout_misfit_end: per map, the held-out misfit of the start
            and of the model returned.
        best_evaluation: per map, which evaluation the returned model is (0: the start).
        holdout_history: per map, the held-out misfit of the start and of every model evaluated.
        regularization: with ``regularization="auto"``: the candidate chosen, its weights and
            every candidate's score (the summed relative held-out misfit).
    """

    velocity: np.ndarray
    history: list[float]
    initial_misfit: float
    final_misfit: float
    stages: list[tuple[float | None, int]] = field(default_factory=list)
    kept_start: list[bool] = field(default_factory=list)
    holdout_shots: list[int] = field(default_factory=list)
    holdout_misfit_start: list[float] = field(default_factory=list)
    holdout_misfit_end: list[float] = field(default_factory=list)
    best_evaluation: list[int] = field(default_factory=list)
    holdout_history: list[list[float]] = field(default_factory=list)
    regularization: dict[str, Any] | None = None

    @property
    def unchanged(self) -> list[int]:
        """The indices of the maps returned unchanged (:attr:`kept_start`)."""
        return [k for k, kept in enumerate(self.kept_start) if kept]

    @property
    def reduction(self) -> float:
        """Fraction of the starting misfit removed (1.0: perfect fit)."""
        if self.initial_misfit == 0:
            return 0.0
        return 1.0 - self.final_misfit / self.initial_misfit

    def holdout_note(self) -> str:
        """One line naming the maps left unchanged by the held-out shots (indices from 0)."""
        shots = ", ".join(map(str, self.holdout_shots)) or "none"
        if not self.unchanged:
            return f"map(s) refined: all {len(self.kept_start)} (held-out shot(s) {shots})"
        return (f"map(s) {', '.join(map(str, self.unchanged))} of {len(self.kept_start)} left unchanged: refinement "
                f"did not lower their misfit on held-out shot(s) {shots}")

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as JSON-able data."""
        return {"history": list(self.history), "initial_misfit": self.initial_misfit,
                "final_misfit": self.final_misfit, "reduction": self.reduction,
                "stages": [{"cutoff_hz": f, "iterations": n} for f, n in self.stages],
                "kept_start": list(self.kept_start), "holdout_shots": list(self.holdout_shots),
                "holdout_misfit_start": list(self.holdout_misfit_start),
                "holdout_misfit_end": list(self.holdout_misfit_end), "best_evaluation": list(self.best_evaluation),
                "regularization": self.regularization}
