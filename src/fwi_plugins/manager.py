"""The plugin manager: one door in for every component.

Built-ins are registered through the same hooks as third-party plugins, which are
loaded from the ``fwi_plugins`` entry-point group. Environment switches:

* ``FWI_DISABLE_PLUGINS=name[,name...]``: block plugins by entry-point or distribution name.
* ``FWI_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points (built-ins and ``--plugin`` only).
* ``FWI_STRICT_PLUGINS=1``: a plugin that fails to load is an error, not a warning.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import DuplicateNameError, PluginError, UnknownNameError
from .specs import KINDS, ComponentSpec, Provenance, kind_of, normalize_name

ENTRY_POINT_GROUP = "fwi_plugins"
BUILTIN_MODULES = (
    "fwi_plugins.builtins.backbones",
    "fwi_plugins.builtins.peft",
    "fwi_plugins.builtins.datasets",
    "fwi_plugins.builtins.misfits",
)


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; the host keeps working without it."""


def _env_list(name: str) -> set[str]:
    return {normalize_name(p) for p in os.environ.get(name, "").split(",") if p.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class PluginInfo:
    """What ``fwi plugins`` shows about one loaded (or failed, or blocked) plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"  # loaded | failed | blocked
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _core_version() -> str:
    try:
        return importlib.metadata.version("fwi-plugins")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class FWIPluginManager(pluggy.PluginManager):
    """A pluggy manager that also keeps the component registry for the four kinds."""

    def __init__(self, *, strict: bool | None = None, autoload: bool | None = None,
                 blocked: Iterable[str] | None = None) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.strict = _env_flag("FWI_STRICT_PLUGINS") if strict is None else strict
        self.autoload = (not _env_flag("FWI_DISABLE_PLUGIN_AUTOLOAD")) if autoload is None else autoload
        self._blocked_by_env = _env_list("FWI_DISABLE_PLUGINS")
        self.blocked_names = self._blocked_by_env | {normalize_name(b) for b in blocked or ()}
        self.infos: dict[str, PluginInfo] = {}
        self._registry: dict[str, dict[str, ComponentSpec]] | None = None

    # -- loading ---------------------------------------------------------------
    def _failed(self, name: str, dist: str | None, version: str | None, exc: BaseException, *,
                label: str | None = None) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.infos[name] = PluginInfo(name, dist, version, status="failed", error=error)
        if label is None:
            message = f"plugin {name!r}" + (f" ({dist} {version})" if dist else "") + f" failed to load: {exc}"
        else:
            message = f"{label} failed to load: {error}"
        if self.strict:
            raise PluginError(message + " (FWI_STRICT_PLUGINS is set)") from exc
        warnings.warn(message + "; continuing without it", PluginLoadWarning, stacklevel=3)

    def _add(self, plugin: Any, name: str, dist: str | None, version: str | None) -> None:
        if normalize_name(name) in self.blocked_names or (dist and normalize_name(dist) in self.blocked_names):
            self.infos[name] = PluginInfo(name, dist, version, status="blocked")
            return
        self.register(plugin, name=name)
        self.infos[name] = PluginInfo(name, dist, version,
                                      hooks=sorted(impl.name for impl in self._hooks_of(plugin)))
        self._registry = None

    def _hooks_of(self, plugin: Any) -> list[Any]:
        return [hc for hc in (self.get_hookcallers(plugin) or [])]

    def load_builtins(self) -> None:
        version = _core_version()
        for module_name in BUILTIN_MODULES:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # a broken built-in must not take the host down either
                self._failed(module_name, "fwi-plugins", version, exc)
                continue
            self._add(module, module_name, "fwi-plugins", version)

    def load_entrypoints(self) -> None:
        seen: set[str] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen:
                continue
            seen.add(ep.name)
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            if normalize_name(ep.name) in self.blocked_names or (dist and normalize_name(dist) in self.blocked_names):
                self.infos[ep.name] = PluginInfo(ep.name, dist, version, status="blocked")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._failed(ep.name, dist, version, exc)
                continue
            self._add(plugin, ep.name, dist, version)

    def load_plugin(self, target: str) -> str:
        """Load one plugin given as an importable module name or a path to a ``.py`` file.

        A file that does not exist is an error; one that fails while importing is handled as
        an installed plugin that fails: a warning naming it and the error, or an error in
        strict mode (``FWI_STRICT_PLUGINS``).
        """
        path = Path(target)
        name = ""
        try:
            if target.endswith(".py") or path.exists():
                if not path.is_file():
                    raise PluginError(f"--plugin {target!r}: no such file")
                name = f"fwi_local_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise PluginError(f"--plugin {target!r}: not a Python file")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                plugin_name = str(path)
            else:
                module = importlib.import_module(target)
                plugin_name = target
        except PluginError:
            raise
        except Exception as exc:
            if name:
                sys.modules.pop(name, None)
            plugin_name = str(path) if name else target
            self._failed(plugin_name, None, None, exc, label=f"--plugin {target!r}")
            self._registry = None
            return plugin_name
        if self.get_plugin(plugin_name) is None:
            self._add(module, plugin_name, None, None)
        return plugin_name

    def load_all(self) -> FWIPluginManager:
        self.load_builtins()
        if self.autoload:
            self.load_entrypoints()
        self.check_pending()
        self._check_blocked_names()
        return self

    def _check_blocked_names(self) -> None:
        """Warn about each blocked name that no installed plugin has: a typo blocks nothing."""
        known = {"fwi-plugins", *map(normalize_name, BUILTIN_MODULES)}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            known.add(normalize_name(ep.name))
            if ep.dist:
                known.add(normalize_name(ep.dist.name))
        for name in sorted(self.blocked_names - known):
            source = "FWI_DISABLE_PLUGINS" if name in self._blocked_by_env else "the block list"
            message = f"{source} names {name!r}, which no installed plugin has."
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
            message += f" Did you mean {close[0]!r}?" if close else f" Installed: {', '.join(sorted(known))}."
            warnings.warn(message, PluginLoadWarning, stacklevel=3)

    # -- registry ----------------------------------------------------------------
    def _build_registry(self) -> dict[str, dict[str, ComponentSpec]]:
        registry: dict[str, dict[str, ComponentSpec]] = {k: {} for k in KINDS}
        names: dict[str, dict[str, ComponentSpec]] = {k: {} for k in KINDS}
        conflicts: dict[str, dict[str, str]] = {k: {} for k in KINDS}
        clashing: dict[str, list[ComponentSpec]] = {k: [] for k in KINDS}
        for info in self.infos.values():
            info.components = {}
        for kind in KINDS.values():
            caller = getattr(self.hook, kind.hook)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                info = self.infos.get(impl.plugin_name) or PluginInfo(impl.plugin_name)
                self.infos.setdefault(impl.plugin_name, info)
                provider = Provenance(impl.plugin_name, info.distribution, info.version)
                try:
                    specs = list(impl.function() or ())
                    for spec in specs:
                        if not isinstance(spec, kind.spec):
                            raise PluginError(f"{kind.hook} yielded {type(spec).__name__}, "
                                              f"expected {kind.spec.__name__}")
                except Exception as exc:
                    self._failed(impl.plugin_name, info.distribution, info.version, exc)
                    continue
                for spec in specs:
                    spec = replace(spec, provider=provider)
                    for alias in (spec.name, *spec.aliases):
                        key = normalize_name(alias)
                        other = names[kind.name].get(key)
                        if other is not None:
                            # Only commands that use this name fail (see get); listing still works.
                            conflicts[kind.name].setdefault(key, (
                                f"{kind.name} name {key!r} is provided twice: by {other.provider} "
                                f"(as {other.name!r}) and by {provider} (as {spec.name!r}). "
                                f"Uninstall or block one of them (FWI_DISABLE_PLUGINS=<plugin>)."))
                            clashing[kind.name].extend(s for s in (other, spec) if s not in clashing[kind.name])
                            continue
                        names[kind.name][key] = spec
                    registry[kind.name].setdefault(spec.key, spec)
                    info.components[kind.name] = info.components.get(kind.name, 0) + 1
        self._mark_unmet_needs(registry, names, conflicts)
        self._aliases = names
        self._conflicts = conflicts
        self._clashing = clashing
        return registry

    def _mark_unmet_needs(self, registry: dict[str, dict[str, ComponentSpec]],
                          names: dict[str, dict[str, ComponentSpec]], conflicts: dict[str, dict[str, str]]) -> None:
        """Record on each spec whose ``needs`` are not met why it is unavailable (in place)."""
        absent = [f"plugin {info.name} is {info.status}" for info in self.infos.values()
                  if info.status in ("blocked", "failed")]
        absent_note = f" ({'; '.join(absent)})" if absent else ""
        reasons: dict[tuple[str, str], str | None] = {}

        def reason(spec: ComponentSpec, seen: frozenset[tuple[str, str]]) -> str | None:
            key = (spec.kind, spec.key)
            if key in reasons:
                return reasons[key]
            for need in spec.needs:
                kind, _, name = need.partition(":")
                wanted = normalize_name(name)
                if wanted in conflicts[kind]:
                    found = f"needs {kind} {name!r}, which two plugins provide"
                elif wanted not in names[kind]:
                    found = f"needs {kind} {name!r}, which is not registered{absent_note}"
                elif (kind, names[kind][wanted].key) in seen:
                    continue  # a cycle of needs: each is met if everything else is
                else:
                    other = names[kind][wanted]
                    why = other.missing_requirements() and f"pip install {' '.join(other.missing_requirements())}"
                    why = why or reason(other, seen | {key})
                    found = f"needs {kind} {name!r}, which is unavailable ({why})" if why else None
                if found:
                    reasons[key] = found
                    return found
            reasons[key] = None
            return None

        for kind, specs in registry.items():
            for key, spec in specs.items():
                why = reason(spec, frozenset({(spec.kind, spec.key)}))
                if why:
                    specs[key] = replace(spec, unavailable=why)
                    for alias, target in names[kind].items():
                        if target is spec:
                            names[kind][alias] = specs[key]

    @property
    def registry(self) -> dict[str, dict[str, ComponentSpec]]:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def conflicts(self) -> list[str]:
        """Every name two providers registered, as messages naming both (empty when none)."""
        self.registry  # noqa: B018 - finds the conflicts
        return [message for kind in KINDS for message in self._conflicts[kind].values()]

    def listing(self, kind: str) -> list[tuple[ComponentSpec, str | None]]:
        """Every component of one kind with the clash it is part of (``None`` when none), by name.

        Unlike :meth:`components` this never raises: both providers of a clashing name are
        listed, each with the message naming both, so ``fwi list`` can show the clash.
        """
        k = kind_of(kind)
        specs = list(self.registry[k.name].values())
        listed = {(spec.key, spec.provider) for spec in specs}
        specs += [spec for spec in self._clashing[k.name] if (spec.key, spec.provider) not in listed]
        conflicts = self._conflicts[k.name]

        def clash(spec: ComponentSpec) -> str | None:
            return next((conflicts[key] for key in map(normalize_name, (spec.name, *spec.aliases))
                         if key in conflicts), None)

        return [(spec, clash(spec)) for spec in sorted(specs, key=lambda s: (s.name, str(s.provider)))]

    def components(self, kind: str) -> dict[str, ComponentSpec]:
        """Every registered component of one kind, by canonical name.

        Raises:
            DuplicateNameError: two providers registered one name of this kind.
        """
        k = kind_of(kind)
        registry = self.registry
        if self._conflicts[k.name]:
            raise DuplicateNameError(next(iter(self._conflicts[k.name].values())))
        return dict(registry[k.name])

    def get(self, kind: str, name: str) -> ComponentSpec:
        """The spec registered under ``name`` (or an alias) in ``kind``.

        Raises:
            UnknownNameError: no such name.
            DuplicateNameError: two providers registered the name (other names work).
        """
        k = kind_of(kind)
        self.registry  # noqa: B018 - builds the alias table
        if normalize_name(name) in self._conflicts[k.name]:
            raise DuplicateNameError(self._conflicts[k.name][normalize_name(name)])
        spec = self._aliases[k.name].get(normalize_name(name))
        if spec is None:
            raise UnknownNameError(k.name, name, self.registry[k.name],
                                   hint=f"List them with: fwi list {k.name}")
        return spec

    def listens(self, hook: str) -> bool:
        """Whether some plugin implements the lifecycle hook ``hook`` (the engine skips reports nobody reads)."""
        if hook not in hookspecs.LIFECYCLE_HOOKS:
            raise ValueError(f"{hook!r} is not a lifecycle hook")
        return bool(getattr(self.hook, hook).get_hookimpls())

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; an implementation that raises becomes a warning."""
        if hook not in hookspecs.LIFECYCLE_HOOKS:
            raise ValueError(f"{hook!r} is not a lifecycle hook")
        for impl in getattr(self.hook, hook).get_hookimpls():
            args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
            try:
                impl.function(**args)
            except Exception as exc:
                warnings.warn(f"plugin {impl.plugin_name!r} raised in {hook}: {exc}", PluginLoadWarning,
                              stacklevel=2)

    def plugin_infos(self) -> list[PluginInfo]:
        self.registry  # noqa: B018 - fills the component counts
        return list(self.infos.values())


_MANAGER: FWIPluginManager | None = None


def get_plugin_manager() -> FWIPluginManager:
    """The process-wide manager, loaded on first use."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = FWIPluginManager().load_all()
    return _MANAGER


def reset_plugin_manager() -> None:
    """Forget the cached manager (tests, or after changing the environment switches)."""
    global _MANAGER
    _MANAGER = None


def registry_summary(manager: FWIPluginManager | None = None) -> Mapping[str, list[str]]:
    manager = manager or get_plugin_manager()
    return {kind: sorted(manager.components(kind)) for kind in KINDS}
