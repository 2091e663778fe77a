"""Contract checks for plugin authors.

Each ``check_*`` function builds a component through its spec, exercises the contract
its kind promises, and raises ``AssertionError`` with a message naming the component
when it is broken. Use them in a plugin's own tests::

    from fwi_plugins.manager import FWIPluginManager
    from fwi_plugins.testing import check_component

    def test_my_backbone_keeps_the_contract():
        manager = FWIPluginManager().load_all()
        check_component(manager.get("backbone", "tinyunet"))

Core runs the same checks over every registered component, so a new component is
tested the moment it registers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .options import describe
from .specs import BackboneSpec, ComponentSpec, DatasetSpec, IOShape, MisfitSpec, PeftMethodSpec, PhysicsSpec
from .survey import Survey

_PLUGIN_SWITCHES = ("FWI_DISABLE_PLUGINS", "FWI_DISABLE_PLUGIN_AUTOLOAD", "FWI_STRICT_PLUGINS")


@contextlib.contextmanager
def isolated_plugins(monkeypatch: Any, cache_dir: str | Path) -> Iterator[None]:
    """A fresh plugin manager, no plugin switches from the environment, a private cache.

    For a plugin's ``conftest.py``, with pytest's ``monkeypatch``::

        @pytest.fixture(autouse=True)
        def _isolated(monkeypatch, tmp_path_factory):
            with isolated_plugins(monkeypatch, tmp_path_factory.mktemp("fwi-cache")):
                yield
    """
    from .manager import reset_plugin_manager

    for var in _PLUGIN_SWITCHES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FWI_CACHE_DIR", str(cache_dir))
    reset_plugin_manager()
    try:
        yield
    finally:
        reset_plugin_manager()


def plugin_test_fixtures() -> tuple[Any, Any]:
    """The autouse fixtures a plugin's tests run under: isolated plugins, and one CPU thread per test.

    The first wraps each test in :func:`isolated_plugins` (a fresh plugin manager, no
    plugin switches from the environment, a private cache); the second runs it with one
    torch thread. In a plugin's ``tests/conftest.py``::

        from fwi_plugins.testing import plugin_test_fixtures

        _fresh_manager, _one_thread = plugin_test_fixtures()

    pytest is imported here, on call, so importing this module does not need it.
    """
    import pytest

    @pytest.fixture(autouse=True)
    def fresh_manager(monkeypatch: Any, tmp_path_factory: Any) -> Iterator[None]:
        with isolated_plugins(monkeypatch, tmp_path_factory.mktemp("fwi-cache")):
            yield

    @pytest.fixture(autouse=True)
    def one_thread() -> Iterator[None]:
        import torch

        # Plugin test models are a few hundred cells: threads only add synchronisation, and on
        # a shared machine a busy core stalls every step of a multi-threaded propagation.
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)

    return fresh_manager, one_thread


#: A small shape every backbone must handle: tests stay fast on 2 CPU cores.
TINY_SHAPE = IOShape(shots=2, time=64, receivers=16, depth=16, width=16)


def _fail(spec: ComponentSpec, message: str) -> AssertionError:
    return AssertionError(f"{spec.kind} {spec.name!r} ({spec.provider or 'unregistered'}): {message}")


def check_spec(spec: ComponentSpec) -> None:
    """Static checks: name, description, documented options, a loadable factory."""
    if not spec.description:
        raise _fail(spec, "has no description")
    for info in describe(spec.options):
        if not info.help:
            raise _fail(spec, f"option {info.name!r} has no help text")
        if info.default is dataclasses.MISSING:
            raise _fail(spec, f"option {info.name!r} has no default")
    if spec.unavailable_reason():
        return  # listed as unavailable; nothing more can be checked here
    if not callable(spec.load()):
        raise _fail(spec, "factory is not callable")


def check_backbone(spec: BackboneSpec, *, shape: IOShape = TINY_SHAPE, options: Any = None) -> Any:
    """Build at ``shape``, run forward and backward; returns the model."""
    import torch

    check_spec(spec)
    model = spec.load()(spec.parse_options(options), shape=shape)
    if not isinstance(model, torch.nn.Module):
        raise _fail(spec, f"factory returned {type(model).__name__}, expected torch.nn.Module")
    x = torch.randn(2, shape.shots, shape.time, shape.receivers)
    y = model(x)
    expected = (2, 1, shape.depth, shape.width)
    if tuple(y.shape) != expected:
        raise _fail(spec, f"output shape {tuple(y.shape)}, expected {expected} for input {tuple(x.shape)}")
    if not torch.isfinite(y).all():
        raise _fail(spec, "output holds NaN or infinite values")
    y.abs().mean().backward()
    if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
        raise _fail(spec, "no parameter receives a gradient")
    names = dict(model.named_modules())
    for target in spec.head:
        if target not in names:
            raise _fail(spec, f"head module {target!r} does not exist in the network")
    return model


class TinyNet:
    """A reference network with the layer types PEFT methods target (built lazily: torch)."""

    @staticmethod
    def build() -> Any:
        import torch
        from torch import nn

        class _Block(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = nn.Conv2d(2, 8, 3, padding=1)
                self.fc1 = nn.Linear(16, 32)
                self.fc2 = nn.Linear(32, 16)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                h = torch.relu(self.conv(x))  # (B, 8, T, R)
                h = h.mean(dim=2)  # (B, 8, R=16)
                return self.fc2(torch.relu(self.fc1(h)))

        class _Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.block = _Block()
                self.head = nn.Linear(16 * 8, 16 * 16)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                h = self.block(x).flatten(1)
                return torch.tanh(self.head(h)).view(-1, 1, 16, 16)

        torch.manual_seed(0)
        return _Net()


def check_peft_method(spec: PeftMethodSpec, *, options: Any = None) -> Any:
    """Adapt :class:`TinyNet`; check trainable parameters, gradients and the forward pass."""
    import torch

    check_spec(spec)
    base = TinyNet.build()
    total_before = sum(p.numel() for p in base.parameters())
    adapted = spec.load()(base, spec.parse_options(options), targets=("fc1", "fc2", "conv"), head=("head",))
    trainable = [(n, p) for n, p in adapted.named_parameters() if p.requires_grad]
    if not trainable:
        raise _fail(spec, "leaves no trainable parameter")
    x = torch.randn(3, 2, 8, 16)
    y = adapted(x)
    if tuple(y.shape) != (3, 1, 16, 16):
        raise _fail(spec, f"changed the output shape to {tuple(y.shape)}")
    y.square().mean().backward()
    for name, p in adapted.named_parameters():
        if not p.requires_grad and p.grad is not None:
            raise _fail(spec, f"frozen parameter {name!r} received a gradient")
    if not any(p.grad is not None for _, p in trainable):
        raise _fail(spec, "no trainable parameter receives a gradient")
    n_trainable = sum(p.numel() for _, p in trainable)
    if n_trainable > total_before:
        raise _fail(spec, f"trains {n_trainable} parameters, more than the network has ({total_before})")
    return adapted


class _ShiftPhysics:
    """A cheap differentiable stand-in physics for dataset checks (not a wave equation)."""

    name = "contract-check"
    version = "0"

    def __init__(self, survey: Survey) -> None:
        self.survey = survey

    def simulate(self, velocity: Any) -> Any:
        import torch

        s = self.survey
        column = velocity.mean(dim=(1, 2))  # (B, X)
        rec_x = torch.tensor([int(r[1]) for r in s.receivers])
        trace = column[:, rec_x] / 1000.0  # (B, R)
        t = torch.linspace(0, 1, s.nt)
        return trace[:, None, None, :] * t[None, None, :, None] * torch.ones(1, s.n_shots, 1, 1)

    def misfit(self, predicted: Any, observed: Any) -> Any:
        return (predicted - observed).square().mean()


class LinearPhysics:
    """A stand-in physics for refinement tests: gathers are a fixed random linear map of the
    velocity, so the misfit is least squares with exact gradients (white in time)."""

    name = "linear"
    version = "1"

    def __init__(self, survey: Survey, *, seed: int = 11) -> None:
        import torch

        self.survey = survey
        g = torch.Generator().manual_seed(seed)
        n_data = survey.n_shots * survey.nt * survey.n_receivers
        n_model = survey.nz * survey.nx
        self.operator = torch.randn(n_data, n_model, generator=g) / n_model**0.5

    def simulate(self, velocity: Any) -> Any:
        flat = (velocity.reshape(len(velocity), -1) - 3000.0) / 1000.0
        s = self.survey
        return (flat @ self.operator.T).reshape(-1, s.n_shots, s.nt, s.n_receivers)

    def misfit(self, predicted: Any, observed: Any) -> Any:
        return (predicted - observed).square().mean()


def check_dataset(spec: DatasetSpec, *, options: Any = None) -> Any:
    """Load the dataset; check splits, shapes, units and (simulated or recorded) gathers."""
    import numpy as np

    check_spec(spec)
    ds = spec.load()(spec.parse_options(options))
    for attr in ("name", "survey", "normalization", "split_sizes", "has_labels"):
        if not hasattr(ds, attr):
            raise _fail(spec, f"dataset object lacks {attr!r}")
    s = ds.survey
    for split, n in ds.split_sizes.items():
        if n == 0:
            continue
        if ds.has_labels:
            v = ds.velocity(split)
            if v.shape[1:] != (1, s.nz, s.nx) or v.shape[0] != n or v.dtype != np.float32:
                raise _fail(spec, f"{split} velocity is {v.shape} {v.dtype}, expected ({n}, 1, {s.nz}, {s.nx}) float32")
            if not np.isfinite(v).all() or v.min() < 100 or v.max() > 20000:
                raise _fail(spec, f"{split} velocity spans {v.min():g}..{v.max():g}: not m/s")
        with tempfile.TemporaryDirectory() as cache:
            d = ds.gathers(split, _ShiftPhysics(s), cache_dir=Path(cache), progress=False)
        if d.shape != (n, s.n_shots, s.nt, s.n_receivers):
            raise _fail(spec, f"{split} gathers are {d.shape}, expected ({n}, {s.n_shots}, {s.nt}, {s.n_receivers})")
        break  # one split is enough to check the contract
    return ds


def check_physics(spec: PhysicsSpec, *, survey: Survey | None = None, options: Any = None) -> Any:
    """Simulate a tiny two-layer model; check shape, gradient and the misfit's zero."""
    import torch

    check_spec(spec)
    survey = survey or Survey.small(nz=20, nx=20, nt=150, n_sources=2)
    physics = spec.load()(spec.parse_options(options), survey=survey)
    if not isinstance(getattr(physics, "version", None), str):
        raise _fail(spec, "physics has no version string (needed for simulation cache keys)")
    v = torch.full((2, 1, survey.nz, survey.nx), 2000.0)
    v[:, :, survey.nz // 2 :] = 3000.0
    v.requires_grad_(True)
    d = physics.simulate(v)
    expected = (2, survey.n_shots, survey.nt, survey.n_receivers)
    if tuple(d.shape) != expected:
        raise _fail(spec, f"simulate returned {tuple(d.shape)}, expected {expected}")
    if not torch.isfinite(d).all() or d.abs().max() == 0:
        raise _fail(spec, "simulated gathers are non-finite or all zero")
    zero = physics.misfit(d.detach(), d.detach())
    if zero.ndim != 0 or float(zero) > 1e-6 * max(1.0, float(d.detach().abs().max())):
        raise _fail(spec, f"misfit of identical gathers is {float(zero):g}, expected a scalar 0")
    loss = physics.misfit(d, torch.zeros_like(d) + d.detach().roll(5, dims=2))
    loss.backward()
    if v.grad is None or not torch.isfinite(v.grad).all() or v.grad.abs().sum() == 0:
        raise _fail(spec, "the misfit gives no finite, non-zero gradient with respect to velocity")
    return physics


def check_misfit(spec: MisfitSpec, *, options: Any = None) -> Any:
    """Compare small gathers: a scalar, zero for identical data, a finite gradient otherwise."""
    import torch

    check_spec(spec)
    misfit = spec.load()
    generator = torch.Generator().manual_seed(0)
    observed = torch.randn(2, 3, 64, 8, generator=generator)
    zero = misfit(observed.clone(), observed)
    if not isinstance(zero, torch.Tensor) or zero.ndim != 0 or not abs(float(zero)) <= 1e-6:
        raise _fail(spec, f"misfit of identical gathers is {zero!r}, expected a scalar tensor 0")
    predicted = torch.randn(2, 3, 64, 8, generator=generator).requires_grad_(True)
    misfit(predicted, observed).backward()
    if predicted.grad is None or not torch.isfinite(predicted.grad).all() or predicted.grad.abs().sum() == 0:
        raise _fail(spec, "the misfit gives no finite, non-zero gradient with respect to the predicted gathers")
    return misfit


CHECKS = {"backbone": check_backbone, "peft": check_peft_method, "dataset": check_dataset, "physics": check_physics,
          "misfit": check_misfit}


def check_component(spec: ComponentSpec, **kwargs: Any) -> Any:
    """Run the contract check for the spec's kind, with the spec's ``example_options`` by default."""
    kwargs.setdefault("options", dict(spec.example_options) or None)
    return CHECKS[spec.kind](spec, **kwargs)  # type: ignore[operator]

