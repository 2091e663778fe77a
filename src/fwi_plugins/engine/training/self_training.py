"""Label-free adaptation by self-training: the physics turns predictions into targets.

With ``labels="self"`` the main job adapts on data that carry no velocity labels in rounds:

1. the adapted network predicts velocity for ``self_samples`` training records (a new
   random draw each round);
2. physics-based FWI (:func:`~fwi_plugins.engine.refinement.refine.refine`, with the run's
   ``refine_*`` options) refines each prediction against its own recorded gathers;
3. a refined map becomes a target only if its data misfit fell by at least the fraction
   ``self_keep``; records whose refinement did not explain the data better are dropped;
4. the adapter trains on the kept records with the refined maps as labels (L1 + SSIM, plus
   ``lambda_physics`` x the misfit), ``ceil(epochs / self_rounds)`` epochs per round.

Each round's targets are written to ``self-training/round-K.npz`` (atomically) and its
checkpoints to ``checkpoints/round-K``, so an interrupted run resumes at the round and
epoch it stopped in without refining again.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from ...data import Normalization
    from ...physics import Physics
    from ..options import RunOptions
    from .result import TrainResult
    from .data import TrainData

__all__ = ["RoundTargets", "misfit_per_model", "refine_options", "round_targets", "self_train"]


@dataclass
class RoundTargets:
    """One round's refined targets and what refinement did to the data misfit.

    Attributes:
        indices: the training records refined this round (rows of the training gathers).
        velocity: their refined velocity in m/s, ``(n, 1, Z, X)``.
        misfit_before, misfit_after: each record's data misfit before and after refinement.
        keep: which records became targets (their misfit fell by at least ``self_keep``).
    """

    indices: np.ndarray
    velocity: np.ndarray
    misfit_before: np.ndarray
    misfit_after: np.ndarray
    keep: np.ndarray

    def summary(self) -> dict[str, Any]:
        """JSON-able figures of the round (for ``metrics.json``)."""
        return {"refined": int(len(self.indices)), "kept": int(self.keep.sum()),
                "misfit_before": float(self.misfit_before.mean()) if len(self.indices) else None,
                "misfit_after": float(self.misfit_after.mean()) if len(self.indices) else None}

    def save(self, path: Path) -> None:
        from ...atomic import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, indices=self.indices, velocity=self.velocity, misfit_before=self.misfit_before,
                     misfit_after=self.misfit_after, keep=self.keep)

    @classmethod
    def load(cls, path: Path) -> RoundTargets:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{f.name: np.asarray(data[f.name]) for f in dataclasses.fields(cls)})


def refine_options(opts: RunOptions, vmin: float, vmax: float) -> dict[str, Any]:
    """The keyword arguments of :func:`~fwi_plugins.engine.refinement.refine.refine` set by ``refine_*`` options."""
    return {"iterations": opts.refine_iterations, "lr": opts.refine_lr, "step": opts.refine_step,
            "smooth": opts.refine_smooth, "mute": opts.refine_mute, "depth_power": opts.refine_depth_power,
            "tv": opts.refine_tv, "prior": opts.refine_prior, "time_limit": opts.refine_time_limit or None,
            "frequencies": opts.refine_frequencies or None, "vmin": vmin, "vmax": vmax}


def misfit_per_model(velocity: np.ndarray, observed: np.ndarray, physics: Physics, *, device: str = "cpu",
                     batch_size: int = 8) -> np.ndarray:
    """Each model's data misfit against its own gathers (the physics' misfit, one model at a time)."""
    import torch

    out = np.empty(len(velocity), np.float64)
    with torch.no_grad():
        for start in range(0, len(velocity), batch_size):
            v = torch.from_numpy(np.ascontiguousarray(velocity[start:start + batch_size], np.float32)).to(device)
            d = torch.from_numpy(np.ascontiguousarray(observed[start:start + batch_size], np.float32)).to(device)
            simulated = physics.simulate(v)
            for i in range(len(v)):
                out[start + i] = float(physics.misfit(simulated[i:i + 1], d[i:i + 1]))
    return out


def round_targets(model: nn.Module, gathers: Any, indices: np.ndarray, *, physics: Physics,
                  normalization: Normalization, opts: RunOptions, device: str, progress: bool) -> RoundTargets:
    """Predict, refine and select the targets of one round (steps 1-3 of the module's recipe)."""
    from ..refinement.refine import refine
    from .validation import predict_unit

    survey = physics.survey
    observed = np.asarray(gathers[indices], np.float32)
    unit = predict_unit(model, observed, normalization=normalization, device=device,
                        batch_size=opts.eval_batch_size, amp=opts.amp)
    predicted = np.clip(normalization.velocity_from_unit(unit), survey.vmin, survey.vmax).astype(np.float32)
    outcome = refine(predicted, observed, physics=physics, device=device, progress=progress,
                     **refine_options(opts, survey.vmin, survey.vmax))
    refined = np.asarray(outcome.velocity, np.float32).reshape(predicted.shape)
    before = misfit_per_model(predicted, observed, physics, device=device)
    after = misfit_per_model(refined, observed, physics, device=device)
    keep = after <= (1.0 - opts.self_keep) * before
    return RoundTargets(indices=np.asarray(indices, np.int64), velocity=refined, misfit_before=before,
                        misfit_after=after, keep=keep)


def _draw(n_records: int, n: int, seed: int, round_index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, round_index])
    return np.sort(rng.choice(n_records, size=min(n, n_records), replace=False))


def self_train(model: nn.Module, train_data: TrainData, val_data: TrainData | None, *, opts: RunOptions,
               normalization: Normalization, physics: Physics, out: Path, device: str, progress: bool,
               notify: Any = None, start_from: str = "") -> tuple[TrainResult, list[dict[str, Any]]]:
    """Adapt ``model`` in ``opts.self_rounds`` rounds of self-training (see the module's docstring).

    ``start_from`` (the foundation's digest) is checked against every round's checkpoints.

    Returns:
        The training result of all rounds together (histories concatenated, each epoch
        tagged with its ``round``) and each round's :meth:`RoundTargets.summary`.
    """
    from .result import TrainResult
    from .train import train
    from .data import TrainData

    if physics is None:
        raise ConfigError("labels='self' needs a physics component to refine predictions; add --physics NAME")
    epochs = max(1, math.ceil(opts.epochs / opts.self_rounds))
    round_opts = dataclasses.replace(opts, labels="full", epochs=epochs)
    total = TrainResult()
    rounds: list[dict[str, Any]] = []
    for r in range(opts.self_rounds):
        path = out / "self-training" / f"round-{r}.npz"
        if path.exists():
            targets = RoundTargets.load(path)
        else:
            indices = _draw(len(train_data.gathers), opts.self_samples, opts.seed, r)
            targets = round_targets(model, train_data.gathers, indices, physics=physics,
                                    normalization=normalization, opts=opts, device=device, progress=progress)
            targets.save(path)
        rounds.append({"round": r, **targets.summary()})
        if not targets.keep.any():
            warnings.warn(f"self-training round {r}: refinement lowered no record's data misfit by "
                          f"{opts.self_keep:.0%} or more; the adapter keeps its weights from here on",
                          UserWarning, stacklevel=3)
            break
        kept = targets.indices[targets.keep]
        data = TrainData(gathers=np.asarray(train_data.gathers[kept], np.float32),
                         velocity=targets.velocity[targets.keep])
        result = train(model, data, val_data, options=round_opts, normalization=normalization, physics=physics,
                       checkpoint_dir=out / "checkpoints" / f"round-{r}", stage="adapt", run_dir=out,
                       notify=notify, device=device, start_from=start_from)
        total.history.extend({**h, "round": r} for h in result.history)
        total.epochs += result.epochs
        total.steps += result.steps
        total.wall_time += result.wall_time
        total.resumed_from = total.resumed_from or result.resumed_from
        total.best_epoch = result.best_epoch
        total.complete = result.complete
        if not result.complete:
            break
    return total, rounds
