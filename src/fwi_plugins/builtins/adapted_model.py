"""The methods peft does not provide: bottleneck adapters, full fine-tuning and a frozen backbone.

:class:`AdaptedModel` wraps a backbone and mirrors the parts of peft's ``PeftModel``
that :mod:`fwi_plugins.adapted` relies on (``add_adapter``, ``set_adapter``,
``active_adapter``, ``merge_and_unload``), so callers treat both alike.

Bottleneck adapters (Houlsby et al. 2019) are attached with forward hooks rather than
by replacing modules, so the backbone's parameter names stay those of its pretrained
weights, and adapter state is only what the adapters add.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..adapted import freeze_statistics, thaw_statistics
from ..errors import DataError, OptionError


def _key(name: str) -> str:
    # ModuleDict keys may not contain dots.
    return name.replace(".", "-")


def _width(module: nn.Module) -> tuple[int, int]:
    """(channels, channel dimension) of a module's output, from its last linear or conv layer."""
    last = None
    for sub in module.modules():
        if isinstance(sub, nn.Linear) or isinstance(sub, nn.modules.conv._ConvNd):
            last = sub
    if isinstance(last, nn.Linear):
        return last.out_features, -1
    if last is not None:
        return last.out_channels, 1
    raise OptionError(f"cannot insert an adapter after {type(module).__name__}: it has no linear or "
                      "convolution layer to take its width from")


class Bottleneck(nn.Module):
    """``x + up(gelu(down(x)))`` over one channel dimension; starts as the identity.

    Args:
        channels: width of the features it adapts.
        hidden: bottleneck width.
        channel_dim: which dimension holds the channels (-1 for tokens, 1 for feature maps).
    """

    def __init__(self, channels: int, hidden: int, channel_dim: int) -> None:
        super().__init__()
        self.channel_dim = channel_dim
        self.down = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, channels)
        # Zero up-projection: the adapted network starts exactly as the pretrained one.
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim == -1:
            return self.up(self.act(self.down(x)))
        h = x.movedim(self.channel_dim, -1)
        return self.up(self.act(self.down(h))).movedim(-1, self.channel_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.delta(x)


def thaw_statistics_of(module: nn.Module) -> nn.Module:
    thaw_statistics(module)
    return module


class _WithAdapter(nn.Module):
    """A module followed by a bottleneck: what ``merge_and_unload`` leaves in the network."""

    def __init__(self, module: nn.Module, adapter: Bottleneck) -> None:
        super().__init__()
        self.module = module
        self.adapter = adapter

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.adapter(self.module(*args, **kwargs))


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


class AdaptedModel(nn.Module):
    """A backbone adapted by a method peft does not provide (``adapter``, ``full``, ``frozen``).

    Args:
        model: the backbone; its parameters are frozen except what the method trains.
        method: ``"adapter"``, ``"full"`` or ``"frozen"``.
        head: names of the output-head modules (trained by ``frozen``, and by ``adapter``
            when ``options["train_head"]``).
        options: the method's options as plain data (saved in adapter_config.json).
        points: for ``adapter``, the module names adapters are inserted after.
    """

    def __init__(self, model: nn.Module, *, method: str, head: Iterable[str] = (),
                 options: dict[str, Any] | None = None, points: Sequence[str] = ()) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.head = tuple(head)
        self.options = dict(options or {})
        self.points = tuple(points)
        self.adapters = nn.ModuleDict()  # adapter name -> ModuleDict(point key -> Bottleneck)
        self.heads = nn.ModuleDict()  # adapter name -> ModuleDict(head key -> copy of the head)
        self.active_adapter: str | None = None
        self.fwi_peft_method = method  # the PEFT method whose saver and loader handle this model
        self._hooks: list[Any] = []
        if method == "full":
            model.requires_grad_(True)
            return
        model.requires_grad_(False)
        modules = dict(model.named_modules())
        for name in self.head:
            if name not in modules:
                raise OptionError(f"{method}: head module {name!r} does not exist in {type(model).__name__}")
        if method == "frozen":
            if not self.head:
                raise OptionError("frozen: the backbone declares no head to train; pass head=...")
            for name in self.head:
                modules[name].requires_grad_(True)
        for name in self.points:
            self._hooks.append(modules[name].register_forward_hook(self._point_hook(name, modules[name])))
        for name in self.head if method == "adapter" else ():
            self._hooks.append(modules[name].register_forward_hook(self._head_hook(name, modules[name])))
        freeze_statistics(model)

    # -- hooks -----------------------------------------------------------------
    # Copies of a hooked module (the per-adapter heads) carry its hooks along; the
    # identity check keeps the hooks acting on the original only.
    def _point_hook(self, name: str, original: nn.Module) -> Any:
        key = _key(name)

        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            if self.active_adapter is None or module is not original:
                return output
            return self.adapters[self.active_adapter][key](output)

        return hook

    def _head_hook(self, name: str, original: nn.Module) -> Any:
        key = _key(name)

        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
            heads = self.heads[self.active_adapter] if self.active_adapter is not None else None
            if heads is None or key not in heads or module is not original:
                return output
            # The frozen original ran too; heads are small, and this keeps names unchanged.
            return heads[key](*args)

        return hook

    # -- peft-like API ------------------------------------------------------------
    @property
    def adapter_names(self) -> list[str]:
        return list(self.adapters)

    def add_adapter(self, name: str) -> None:
        """Add a freshly initialised adapter ``name`` (``adapter`` method only); not activated."""
        if self.method != "adapter":
            raise OptionError(f"{self.method}: has no separate adapters; only peft methods and "
                              "'adapter' hold several on one backbone")
        if name in self.adapters:
            raise OptionError(f"adapter {name!r} exists already (have: {', '.join(self.adapters)})")
        modules = dict(self.model.named_modules())
        reduction = int(self.options.get("reduction", 8))
        fixed = int(self.options.get("bottleneck", 0))
        bottlenecks = nn.ModuleDict()
        for point in self.points:
            channels, dim = _width(modules[point])
            hidden = fixed or max(channels // reduction, 4)
            bottlenecks[_key(point)] = Bottleneck(channels, hidden, dim)
        heads = nn.ModuleDict()
        if self.options.get("train_head", True):
            for head in self.head:
                heads[_key(head)] = thaw_statistics_of(copy.deepcopy(modules[head]))
        device = next(self.model.parameters()).device
        self.adapters[name] = bottlenecks.to(device)
        self.heads[name] = heads.to(device)
        if self.active_adapter is None:
            self.set_adapter(name)
        else:
            self.adapters[name].requires_grad_(False)
            self.heads[name].requires_grad_(False)

    def set_adapter(self, name: str) -> None:
        """Make ``name`` the adapter used in forward and the only one that trains."""
        if name not in self.adapters:
            raise OptionError(f"no adapter {name!r} (have: {', '.join(self.adapters) or 'none'})")
        for other in self.adapters:
            self.adapters[other].requires_grad_(other == name)
            self.heads[other].requires_grad_(other == name)
        self.active_adapter = name

    def merge_and_unload(self) -> nn.Module:
        """The backbone alone, with the active adapter built into it, for inference.

        Bottlenecks are non-linear and cannot be folded into weights: each adapted module
        is replaced by itself followed by its bottleneck.
        """
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        model = self.model
        name = self.active_adapter
        if name is not None:
            for point in self.points:
                _set_submodule(model, point, _WithAdapter(model.get_submodule(point),
                                                          self.adapters[name][_key(point)]))
            for head in self.head:
                if _key(head) in self.heads[name]:
                    _set_submodule(model, head, self.heads[name][_key(head)])
        return model

    def adapter_state(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors that make up adapter ``name`` (or all trained weights for full/frozen)."""
        if self.method == "full":
            return {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.method == "frozen":
            return {f"model.{k}": v for k, v in self.model.state_dict().items()
                    if any(k.startswith(h + ".") for h in self.head)}
        state = {f"adapters.{k}": v for k, v in self.adapters[name].state_dict().items()}
        state.update({f"heads.{k}": v for k, v in self.heads[name].state_dict().items()})
        return state

    def load_adapter_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`adapter_state`; every tensor must fit."""
        if self.method in ("full", "frozen"):
            target = {k.removeprefix("model."): v for k, v in state.items()}
            missing, unexpected = self.model.load_state_dict(target, strict=self.method == "full")
            if unexpected:
                raise OptionError(f"{self.method}: saved tensors not in the network: {', '.join(unexpected[:5])}")
            return
        adapters = {k.removeprefix("adapters."): v for k, v in state.items() if k.startswith("adapters.")}
        heads = {k.removeprefix("heads."): v for k, v in state.items() if k.startswith("heads.")}
        self.adapters[name].load_state_dict(adapters)
        self.heads[name].load_state_dict(heads)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


# -- the saved format ---------------------------------------------------------------------
def save_folder(model: AdaptedModel, folder: Path) -> None:
    """The saver of ``adapter``, ``full`` and ``frozen``: each named adapter in the fwi-plugins format.

    As in peft, ``default`` goes at the top of ``folder``, any other adapter in a subfolder.
    """
    from ..adapter_folder import DEFAULT, write_adapter

    if not isinstance(model, AdaptedModel):
        raise OptionError(f"{type(model).__name__} was not adapted by 'adapter', 'full' or 'frozen'")
    names = model.adapter_names or [DEFAULT]
    if DEFAULT in names:
        names.remove(DEFAULT)
        names.insert(0, DEFAULT)
    for name in names:
        config = {"adapter_name": name, "options": model.options, "points": list(model.points),
                  "head": list(model.head)}
        write_adapter(folder if name == names[0] else folder / name, method=model.method, config=config,
                      tensors=model.adapter_state(name))


def load_folder(model: nn.Module, folder: Path, *, trainable: bool) -> AdaptedModel:
    """The loader matching :func:`save_folder`: the adapted model with every saved adapter."""
    from ..adapter_folder import CONFIG_NAME, DEFAULT, named_adapter_folders, read_adapter_config, read_adapter_weights
    from ..weights import check_state

    config = read_adapter_config(folder)
    method = config.get("fwi_method")
    if method not in ("adapter", "full", "frozen"):
        raise DataError(f"{folder / CONFIG_NAME}: unknown method {method!r}")
    try:
        adapted = AdaptedModel(model, method=method, head=config.get("head", ()), options=config.get("options"),
                               points=config.get("points", ()))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise DataError(f"{folder / CONFIG_NAME}: settings that do not fit {type(model).__name__} "
                        f"({exc})") from exc
    device = next(model.parameters()).device
    entries = [(config.get("adapter_name", DEFAULT), folder)]
    entries += [(sub.name, sub) for sub in named_adapter_folders(folder)] if method == "adapter" else []
    for name, where in entries:
        state = read_adapter_weights(where, device)
        if method == "adapter":
            adapted.add_adapter(name)
        expected = _StateOf(adapted.adapter_state(name if method == "adapter" else DEFAULT))
        check_state(expected, state, source=str(where / "adapter_model.safetensors"),  # type: ignore[arg-type]
                    target=f"{method} on {type(model).__name__}")
        adapted.load_adapter_state(name, state)
    if method == "adapter":
        adapted.set_adapter(entries[0][0])
    return adapted


class _StateOf:
    """A stand-in with a ``state_dict()``, for :func:`~fwi_plugins.weights.check_state`."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state
