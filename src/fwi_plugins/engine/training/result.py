"""What :func:`~fwi_plugins.engine.training.train.train` returns: the history and where the loop ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainResult"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        history: one dict per epoch (``epoch``, ``train_loss``, ``val_mae``, ``lr``, ...).
        epochs: epochs finished in total (including resumed ones).
        steps: optimisation steps in total.
        wall_time: seconds spent training, summed over interrupted sessions.
        resumed_from: the epoch a checkpoint was loaded from (0 for a fresh start).
        best_epoch: with ``select_best``, the epoch whose weights the model ends with
            (0: the starting network); ``None`` without selection.
        complete: ``False`` when the ``max_minutes`` budget stopped the loop before the end;
            the checkpoint it wrote lets the same call resume.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    wall_time: float = 0.0
    resumed_from: int = 0
    best_epoch: int | None = None
    complete: bool = True

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's record, or the selected epoch's with ``select_best``."""
        if self.best_epoch is not None:
            for record in self.history:
                if record.get("epoch") == self.best_epoch:
                    return record
        return self.history[-1] if self.history else {}
