"""Spec dataclasses: what a plugin declares about one component.

Registration hooks yield these. A spec is cheap: its ``factory`` is a callable or a
``"module:attribute"`` string resolved only when the component is built, so listing
components never imports torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import options as _options
from .errors import MissingDependencyError, PluginError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_TARGET = re.compile(rf"{_DOTTED}:{_DOTTED}")


def check_target(target: Any, owner: str, what: str) -> None:
    """Refuse a ``factory`` (or saver, loader) that is neither callable nor ``"module:function"``.

    Only the form is checked, nothing is imported: registration stays cheap, and a module that
    cannot be imported is reported when the component is built.
    """
    if callable(target):
        return
    if not isinstance(target, str) or not _TARGET.fullmatch(target.strip()):
        raise PluginError(f"{owner}: {what} {target!r} is neither a callable nor a 'module:function' string "
                          f"(for example 'my_plugin.nets:build_net')")


def normalize_name(name: str) -> str:
    """Names are case-insensitive and treat ``-`` and ``_`` alike; ``-`` is canonical."""
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class Provenance:
    """Who provided a component: plugin name, distribution and its version."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip()
        return self.plugin


@dataclass(frozen=True, kw_only=True)
class ComponentSpec:
    """Common base of every spec.

    Attributes:
        name: registry name, unique within its kind (``-`` and ``_`` are equivalent).
        factory: callable building the component, or ``"module:attribute"`` naming one.
        description: one line shown by ``fwi list``.
        aliases: other names that resolve to this component.
        requires: importable module names the factory needs; missing ones make the
            component listed as unavailable, with the ``pip install`` line to fix it.
        options: an option dataclass (see :mod:`fwi_plugins.options`) or ``None``.
        example_options: option values that make a small, fast instance; contract checks
            (:mod:`fwi_plugins.testing`) build the component with them.
        needs: components of other plugins this one builds on, as ``"kind:name"`` (for
            example ``("physics:deepwave",)``). When one is not registered (its plugin is
            missing, failed or blocked) or is itself unavailable, this component is listed
            as unavailable with the reason, and building it is an error.
        provider: filled in by the plugin manager.
        unavailable: filled in by the plugin manager: why a need is not met, else ``None``.
    """

    kind: ClassVar[str] = "component"

    name: str
    factory: Callable[..., Any] | str
    description: str = ""
    aliases: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    options: type | None = None
    example_options: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    provider: Provenance | None = None
    unavailable: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name or ""):
            raise PluginError(f"invalid {self.kind} name {self.name!r}: use letters, digits, '-' and '_', "
                              "starting with a letter")
        if isinstance(self.needs, str):
            object.__setattr__(self, "needs", (self.needs,))
        for need in self.needs:
            kind, _, name = str(need).partition(":")
            if kind not in KINDS or not _NAME.fullmatch(name):
                raise PluginError(f"{self.kind} {self.name!r}: needs {need!r}: expected 'KIND:NAME' with KIND "
                                  f"one of {', '.join(KINDS)}, for example 'physics:deepwave'")
        check_target(self.factory, f"{self.kind} {self.name!r}", "factory")
        if self.options is not None and not dataclasses.is_dataclass(self.options):
            raise PluginError(f"{self.kind} {self.name!r}: options must be a dataclass, got {self.options!r}")

    @property
    def key(self) -> str:
        return normalize_name(self.name)

    @property
    def label(self) -> str:
        """``kind 'name' (plugin P, distribution version)``: how errors name this component."""
        label = f"{self.kind} {self.name!r}"
        if self.provider is None:
            return label
        plugin = f"plugin {self.provider.plugin}"
        if self.provider.distribution:
            plugin += f", {self.provider}"
        return f"{label} ({plugin})"

    def missing_requirements(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def unavailable_reason(self) -> str | None:
        """Why this component cannot be built (a missing package, an unmet need), else ``None``."""
        missing = self.missing_requirements()
        if missing:
            return f"pip install {' '.join(missing)}"
        return self.unavailable

    def load(self) -> Callable[..., Any]:
        """Resolve the factory, importing its module now."""
        missing = self.missing_requirements()
        if missing:
            raise MissingDependencyError(self.label, missing)
        if self.unavailable:
            raise PluginError(f"{self.label} is unavailable: {self.unavailable}")
        return _resolve(self.factory, self.label, "factory")

    def check_importable(self) -> None:
        """Import everything this component names (``--dry-run``), building nothing.

        Raises:
            MissingDependencyError: a required package is not installed.
            PluginError: a ``"module:attribute"`` cannot be imported, naming this component.
        """
        self.load()

    def parse_options(self, values: Mapping[str, Any] | Any = None) -> Any:
        """Options from a mapping of (string) values, or an options instance as is."""
        if self.options is not None and isinstance(values, self.options):
            return values
        return _options.parse(self.options, values, owner=f"{self.kind} {self.name}")

    def describe_options(self) -> list[_options.OptionInfo]:
        return _options.describe(self.options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "aliases": list(self.aliases),
            "requires": list(self.requires),
            "missing": self.missing_requirements(),
            "needs": list(self.needs),
            "unavailable": self.unavailable_reason(),
            "provider": dataclasses.asdict(self.provider) if self.provider else None,
            "options": [o.to_dict() for o in self.describe_options()],
        }


@dataclass(frozen=True, kw_only=True)
class BackboneSpec(ComponentSpec):
    """A network mapping gathers ``(B, S, T, R)`` to velocity ``(B, 1, Z, X)``.

    Factory: ``factory(options, *, shape: IOShape) -> torch.nn.Module``.

    Attributes:
        peft_targets: module-name patterns PEFT methods adapt by default (peft's
            ``target_modules`` syntax: suffixes or a regular expression).
        head: names of the output-head modules; trained in full by ``frozen`` and saved
            beside adapters (peft's ``modules_to_save``).
        pretrained: named weights shipped with the plugin, ``name -> "package:path"``
            of a safetensors file.
    """

    kind: ClassVar[str] = "backbone"

    peft_targets: tuple[str, ...] = ()
    head: tuple[str, ...] = ()
    pretrained: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in self.pretrained or {}:
            if str(name).strip().lower() == "none":
                raise PluginError(f"backbone {self.name!r}: pretrained weights may not be named {name!r}: 'none' is "
                                  f"reserved for an untrained network")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(peft_targets=list(self.peft_targets), head=list(self.head),
                    pretrained=sorted(self.pretrained))
        return data


#: The attribute naming the PEFT method that adapted a model (see :meth:`PeftMethodSpec.apply`).
METHOD_ATTRIBUTE = "fwi_peft_method"


@dataclass(frozen=True, kw_only=True)
class PeftMethodSpec(ComponentSpec):
    """A way to adapt a backbone while training few of its weights.

    Factory: ``factory(model, options, *, targets: tuple[str, ...], head: tuple[str, ...])
    -> torch.nn.Module``; the returned model's trainable parameters are exactly the ones
    the method trains.

    Saving is part of the method (see :mod:`fwi_plugins.adapter_folder` for the layout):

    Attributes:
        saver: ``saver(model, folder) -> None`` writes the adapted model's adapters into
            the fresh, empty ``folder`` (:func:`fwi_plugins.adapter_folder.write_adapter`
            writes one in the fwi-plugins format, naming this method). Left out: peft's
            own layout for a peft model, otherwise the trained parameters and every
            buffer (a generic format that loads without the method).
        loader: ``loader(model, folder, *, trainable: bool) -> torch.nn.Module`` rebuilds
            the adapted model on a freshly built backbone from a folder whose settings
            name this method; read weights with
            :func:`fwi_plugins.adapter_folder.read_adapter_weights`, which keeps the
            safety rules. Required with ``saver``.

    Either may be a callable or a ``"module:function"`` string, imported when used.
    """

    kind: ClassVar[str] = "peft"

    saver: Callable[..., Any] | str | None = None
    loader: Callable[..., Any] | str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.saver is None) != (self.loader is None):
            raise PluginError(f"peft {self.name!r}: a saver needs a loader and a loader a saver")
        for what in ("saver", "loader"):
            if getattr(self, what) is not None:
                check_target(getattr(self, what), f"peft {self.name!r}", what)

    def apply(self, model: Any, options: Mapping[str, Any] | Any = None, *, targets: tuple[str, ...] = (),
              head: tuple[str, ...] = ()) -> Any:
        """Adapt ``model`` with this method, and record the method's name on the result.

        The name (in the attribute :data:`METHOD_ATTRIBUTE`) is how saving finds the
        method's own format.
        """
        adapted = self.load()(model, self.parse_options(options), targets=tuple(targets), head=tuple(head))
        setattr(adapted, METHOD_ATTRIBUTE, self.name)
        return adapted

    def load_saver(self) -> Callable[..., Any] | None:
        """The saver, imported now (``None`` when the method keeps the default format)."""
        if self.saver is None:
            return None
        return _resolve(self.saver, self.label, "saver")

    def load_loader(self) -> Callable[..., Any] | None:
        """The loader, imported now (``None`` when the method keeps the default format)."""
        if self.loader is None:
            return None
        return _resolve(self.loader, self.label, "loader")

    def check_importable(self) -> None:
        super().check_importable()
        self.load_saver()
        self.load_loader()


@dataclass(frozen=True, kw_only=True)
class DatasetSpec(ComponentSpec):
    """A source of velocity maps and/or shot gathers.

    Factory: ``factory(options) -> fwi_plugins.data.SeismicDataset``.
    """

    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True, kw_only=True)
class PhysicsSpec(ComponentSpec):
    """A differentiable forward model with data misfits.

    Factory: ``factory(options, *, survey: Survey) -> Physics`` where the object has
    ``simulate(velocity) -> gathers``, ``misfit(predicted, observed) -> scalar`` and a
    ``version`` string (see :class:`fwi_plugins.physics.Physics`).
    """

    kind: ClassVar[str] = "physics"


@dataclass(frozen=True, kw_only=True)
class MisfitSpec(ComponentSpec):
    """A data misfit any physics can use by name (``-o physics.misfit=NAME``).

    Factory: the misfit itself, ``factory(predicted, observed) -> scalar tensor`` on
    gathers ``(..., time, receiver)`` of one shape: differentiable, zero when the two are
    identical (see :mod:`fwi_plugins.physics` for the built-in ones). A misfit takes no
    options; register one name per variant.
    """

    kind: ClassVar[str] = "misfit"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.options is not None:
            raise PluginError(f"misfit {self.name!r}: a misfit takes no options; register one name per variant")


def _resolve(target: Callable[..., Any] | str, owner: str, what: str) -> Callable[..., Any]:
    """A callable, or the object a ``"module:attribute"`` string names (imported now).

    Any failure, a module that raises while importing included, is a :class:`PluginError`
    naming ``owner``, ``what`` it is (factory, saver...) and the target.
    """
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            found = getattr(found, part)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, (ImportError, AttributeError)) else f"{type(exc).__name__}: {exc}"
        raise PluginError(f"{owner}: cannot import {what} {target!r}: {reason}") from exc
    return found


@dataclass(frozen=True)
class Kind:
    """One row of the table tying a kind to its CLI option, hook and spec class."""

    name: str
    plural: str
    option: str
    hook: str
    spec: type[ComponentSpec]


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("backbone", "backbones", "--backbone", "fwi_backbones", BackboneSpec),
        Kind("peft", "peft methods", "--peft", "fwi_peft_methods", PeftMethodSpec),
        Kind("dataset", "datasets", "--dataset", "fwi_datasets", DatasetSpec),
        Kind("physics", "physics", "--physics", "fwi_physics", PhysicsSpec),
        Kind("misfit", "misfits", "-o physics.misfit", "fwi_misfits", MisfitSpec),
    )
}


def kind_of(name: str) -> Kind:
    """Look a kind up by name, plural or hook name."""
    from .errors import UnknownNameError

    key = normalize_name(name)
    for kind in KINDS.values():
        if key in (kind.name, normalize_name(kind.plural), normalize_name(kind.hook), kind.name + "s"):
            return kind
    raise UnknownNameError("kind", name, KINDS)


@dataclass(frozen=True)
class IOShape:
    """The sizes a backbone is built for: gathers (shots, time, receivers) -> velocity (depth, width)."""

    shots: int = 5
    time: int = 1000
    receivers: int = 70
    depth: int = 70
    width: int = 70
