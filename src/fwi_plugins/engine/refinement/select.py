"""Regularisation chosen by held-out shots: ``refine(..., regularization="auto")``.

Which prior suits a survey (none, total variation for blocky layers, a smoothness penalty
against streaks) depends on its geology, which the caller does not know. The held-out shots
(:mod:`fwi_plugins.engine.refinement.holdout`) can tell: :func:`select_regularization` refines
every map once per candidate in :data:`CANDIDATES` and keeps the candidate whose models
predict the held-out shots best, summed over the maps as each map's held-out misfit relative
to its start's (so every map weighs the same). All maps of a call share the choice. It costs
one refinement per candidate, which is why it is not the default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...errors import OptionError

if TYPE_CHECKING:
    from .result import RefineResult

__all__ = ["CANDIDATES", "REGULARIZATIONS", "check_sobolev", "select_regularization"]

#: ``regularization`` values: ``"given"`` uses ``tv`` and ``sobolev`` as passed; ``"auto"`` chooses.
REGULARIZATIONS = ("given", "auto")

#: The candidates of ``regularization="auto"``: name -> ``tv`` and ``sobolev`` weights (on the
#: data misfit normalised to 1 at the start of each stage).
CANDIDATES: dict[str, dict[str, float]] = {
    "none": {"tv": 0.0, "sobolev": 0.0},
    "tv-0.02": {"tv": 0.02, "sobolev": 0.0},
    "tv-0.1": {"tv": 0.1, "sobolev": 0.0},
    "smooth-0.1": {"tv": 0.0, "sobolev": 0.1},
    "smooth-1": {"tv": 0.0, "sobolev": 1.0},
}


def check_sobolev(sobolev: float, regularization: str) -> None:
    if regularization not in REGULARIZATIONS:
        raise OptionError(f"refine: regularization {regularization!r} is not known; expected one of "
                          f"{', '.join(REGULARIZATIONS)}")
    if not (isinstance(sobolev, (int, float)) and sobolev >= 0 and sobolev < float("inf")):
        raise OptionError(f"refine: sobolev must be a finite number >= 0, got {sobolev!r}")


def relative_holdout(result: RefineResult) -> float:
    """The sum over maps of the returned model's held-out misfit over the start's (1 where the start's is 0)."""
    return float(sum(end / start if start > 0 else 1.0
                     for start, end in zip(result.holdout_misfit_start, result.holdout_misfit_end)))


def select_regularization(run: Callable[[dict[str, float]], RefineResult]) -> RefineResult:
    """Refine with every candidate (``run(weights)``); the result of the one best on held-out shots.

    The result's ``regularization`` records the choice and each candidate's score.

    Raises:
        OptionError: the refinement holds out no shots (nothing to choose by).
    """
    results: dict[str, RefineResult] = {}
    for name, weights in CANDIDATES.items():
        results[name] = run(weights)
        if not results[name].holdout_shots:
            raise OptionError("refine: regularization='auto' chooses by held-out shots, and none are held out "
                              "(holdout=0, or a survey of fewer than 3 shots)")
    scores = {name: relative_holdout(result) for name, result in results.items()}
    chosen = min(scores, key=lambda name: scores[name])
    result = results[chosen]
    record: dict[str, Any] = {"chosen": chosen, **CANDIDATES[chosen], "scores": scores}
    result.regularization = record
    return result
