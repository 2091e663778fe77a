"""Refinement through the network: a PEFT adapter of the model, fitted to one survey's data.

Plain refinement (:func:`~fwi_plugins.engine.refinement.refine.refine`) moves every cell of the velocity
map. Here the map stays the network's output, and what moves is a small adapter (LoRA by
default) added to a copy of the network for each survey::

    v(theta) = velocity_from_unit(network_theta(gathers))
    minimise  misfit(simulate(v(theta)), observed)  +  prior * mean(((v(theta) - v0) / range)^2)

over the adapter's weights ``theta`` only, starting from zero (so the first evaluation is the
network's own prediction ``v0``). The network's structure then shapes the update: it can only
draw the kind of model it has learnt to draw. Adam takes the steps; the model of lowest
objective met along the way is kept, so the result is never worse, by this measure, than the
prediction it started from.

    from fwi_plugins.engine.refinement.network import refine_through_network
    result = refine_through_network(model, gathers, physics=physics, iterations=40)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import DataError, OptionError
from ..device import resolve_device
from ..training.losses import physics_velocity

if TYPE_CHECKING:
    import torch

    from ...data.dataset import Normalization
    from .result import RefineResult

__all__ = ["refine_through_network"]

#: The adapter fitted per survey unless another is asked for: a rank-4 LoRA.
DEFAULT_PEFT: dict[str, Any] = {"r": 4, "alpha": 8}


def refine_through_network(model: torch.nn.Module, gathers: Any, *, physics: Any,
                           observed: Any = None, normalization: Normalization | None = None,
                           peft: str = "lora", peft_options: Mapping[str, Any] | None = None,
                           backbone: str | None = None, lr: float = 1e-3, iterations: int = 40,
                           prior: float = 0.0, time_limit: float | None = None, device: Any = "auto",
                           callback: Callable[[int, float, torch.Tensor], None] | None = None) -> list[RefineResult]:
    """Fit a fresh adapter of ``model`` to each survey's data; one :class:`RefineResult` per map.

    Args:
        model: a backbone (its weights are never changed: each survey gets a copy).
        gathers: ``(N, S, T, R)`` raw shot gathers, the network's input.
        physics: the forward model (``simulate``, ``misfit``, ``survey``).
        observed: the data to fit, shaped like ``gathers`` (default: ``gathers`` themselves).
        normalization: the network's scales (default: ``model.pretrained_cfg.normalization``).
        peft, peft_options: the adapter (a registered PEFT method and its options).
        backbone: the backbone's registry name, for its PEFT targets (default: the model's card).
        lr: Adam's learning rate on the adapter's weights.
        iterations: misfit evaluations per survey at most.
        prior: weight of the tie to the network's own prediction (on the velocity-range scale).
        time_limit: seconds per survey at most.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        callback: ``callback(iteration, objective, velocity)`` after each evaluation.
    """
    import torch

    if iterations < 1:
        raise OptionError(f"iterations must be at least 1, got {iterations}")
    if lr <= 0 or prior < 0:
        raise OptionError(f"lr must be positive and prior not negative, got lr={lr}, prior={prior}")
    normalization = normalization or _card_normalization(model)
    device = resolve_device(device)
    gathers = np.asarray(gathers, dtype=np.float32)
    observed = gathers if observed is None else np.asarray(observed, dtype=np.float32)
    if gathers.ndim != 4 or observed.shape != gathers.shape:
        raise DataError(f"gathers must be (N, shot, time, receiver) and observed alike; got {gathers.shape} "
                        f"and {observed.shape}")
    backbone = backbone or getattr(getattr(model, "pretrained_cfg", None), "backbone", None)
    results = []
    for i in range(len(gathers)):
        adapted = _fresh_adapter(model, peft, dict(DEFAULT_PEFT if peft_options is None else peft_options),
                                 backbone).to(device)
        x = torch.as_tensor(normalization.gathers_to_unit(gathers[i:i + 1]), device=device)
        d = torch.as_tensor(observed[i:i + 1], device=device)
        results.append(_fit_one(adapted, x, d, physics=physics, normalization=normalization, lr=lr,
                                iterations=iterations, prior=prior, time_limit=time_limit, callback=callback))
    return results


def _card_normalization(model: Any) -> Normalization:
    card = getattr(model, "pretrained_cfg", None)
    if card is None or getattr(card, "normalization", None) is None:
        raise OptionError("the model carries no normalisation (it was not built with pretrained weights): "
                          "pass normalization=")
    return card.normalization


def _fresh_adapter(model: Any, peft: str, options: dict[str, Any], backbone: str | None) -> Any:
    from ..components import registry_spec

    spec = registry_spec("peft", peft)
    backbone_spec = registry_spec("backbone", backbone) if backbone else None
    adapted = spec.apply(copy.deepcopy(model), spec.parse_options(options),
                         targets=tuple(backbone_spec.peft_targets if backbone_spec else ()),
                         head=tuple(backbone_spec.head if backbone_spec else ()))
    adapted.train(False)
    if not any(p.requires_grad for p in adapted.parameters()):
        raise OptionError(f"PEFT method {peft!r} left no trainable weights on this model")
    return adapted


def _fit_one(adapted: Any, x: torch.Tensor, observed: torch.Tensor, *, physics: Any,
             normalization: Normalization, lr: float, iterations: int, prior: float,
             time_limit: float | None, callback: Callable[..., None] | None) -> RefineResult:
    import torch

    from .result import RefineResult

    survey = physics.survey
    span = float(survey.vmax - survey.vmin)
    params = [p for p in adapted.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    history: list[float] = []
    misfits: list[float] = []
    best: tuple[float, float, torch.Tensor] | None = None
    start: torch.Tensor | None = None  # the network's own prediction, for the prior
    for it in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        velocity = physics_velocity(adapted(x), normalization, physics)
        if start is None:
            start = velocity.detach()
        misfit = physics.misfit(physics.simulate(velocity), observed)
        objective = misfit + prior * (((velocity - start) / span) ** 2).mean() if prior else misfit
        value = float(objective.detach())
        history.append(value)
        misfits.append(float(misfit.detach()))
        if best is None or value < best[0]:
            best = (value, misfits[-1], velocity.detach().clone())
        if callback is not None:
            callback(it, value, velocity.detach())
        if it == iterations - 1 or (deadline is not None and time.perf_counter() >= deadline):
            break
        objective.backward()
        optimizer.step()
    assert best is not None
    return RefineResult(velocity=best[2].cpu().numpy().astype(np.float32), history=history,
                        initial_misfit=misfits[0], final_misfit=best[1])
