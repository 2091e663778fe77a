"""The engine's configuration: the resolved configuration of a job, read, merged, checked and written.

A :class:`RunConfig` is everything needed to run a job again: the command (``run`` or
``pretrain``), the chosen component of each kind with its complete options, the engine
options and the output directory. It is written into every run directory as
``config.toml`` and ``config.json``; ``fwi run --config FILE`` runs it again.

The file layout (TOML shown; JSON has the same structure)::

    command = "run"
    out = "runs/vit-lora-salt"

    [options]
    epochs = 6
    lambda_physics = 0.0

    [backbone]
    name = "vit"
    options = { size = "tiny" }

    [peft]
    name = "lora"

    [[dataset]]          # pretrain takes several datasets; run takes one
    name = "salt"

Validation happens in :meth:`RunConfig.resolve`, before any work starts: every unknown
key is reported with a "Did you mean" hint and every bad value names its key. The engine
options' schemas (:class:`RunOptions`, :class:`PretrainOptions`, :class:`TrainOptions`) are in
:mod:`fwi_plugins.engine.options`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import options as _options
from ..errors import ConfigError, FWIError, OptionError, UnknownNameError
from ..atomic import atomic_write_text
from ..settings_files import read_toml_or_json, to_toml
from .options import PretrainOptions, RunOptions


__all__ = [
    "COMMANDS",
    "Component",
    "ResolvedConfig",
    "RunConfig",
    "load_config",
    "run_device",
]

COMMANDS = ("run", "pretrain")

# The kinds each command needs, and whether several components of a kind are allowed.
_COMMAND_KINDS: dict[str, dict[str, bool]] = {
    "run": {"backbone": False, "peft": False, "physics": False, "dataset": False},
    "pretrain": {"backbone": False, "physics": False, "dataset": True},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "run": ("backbone", "peft", "physics", "dataset"),
    "pretrain": ("backbone", "dataset"),
}

_OPTIONS_CLASS: dict[str, type] = {"run": RunOptions, "pretrain": PretrainOptions}


@dataclass(frozen=True)
class Component:
    """One chosen component: its registry name and its option values (strings allowed)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


@dataclass(frozen=True)
class ResolvedConfig:
    """A :class:`RunConfig` checked against the registry: specs and parsed options.

    Attributes:
        config: the configuration with canonical names and complete option values.
        specs: kind -> tuple of specs (one per chosen component, in order).
        component_options: kind -> tuple of parsed option dataclasses (or ``None``).
        options: the parsed engine options (:class:`RunOptions` or :class:`PretrainOptions`).
    """

    config: RunConfig
    specs: Mapping[str, tuple[Any, ...]]
    component_options: Mapping[str, tuple[Any, ...]]
    options: Any

    def spec(self, kind: str) -> Any:
        """The spec of the (first) component of ``kind``, or ``None`` if none was chosen."""
        specs = self.specs.get(kind) or ()
        return specs[0] if specs else None

    def component_option(self, kind: str) -> Any:
        values = self.component_options.get(kind) or ()
        return values[0] if values else None


@dataclass(frozen=True)
class RunConfig:
    """The configuration of one job, as written to and read from ``config.toml`` / ``config.json``.

    Attributes:
        command: ``"run"`` or ``"pretrain"``.
        components: kind -> tuple of :class:`Component` (several only for pretrain datasets).
        options: engine option values (strings allowed until :meth:`resolve`).
        out: the output (run) directory.
        argv: the command line that produced this configuration, for the record.
    """

    command: str
    components: Mapping[str, tuple[Component, ...]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    out: str | None = None
    argv: tuple[str, ...] = ()

    # -- building ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config",
                  base_dir: Path | None = None) -> RunConfig:
        """Read the file structure (see the module docstring); unknown keys fail with a hint.

        Relative ``out`` and ``options.pretrained`` paths are taken relative to
        ``base_dir`` (the config file's folder), never to the working directory.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a table at the top level")
        from ..specs import KINDS

        known = {"command", "out", "options", "argv", *KINDS}
        for key in data:
            if key not in known:
                raise UnknownNameError(f"key in {source}", key, sorted(known))
        command = data.get("command", "run")
        if command not in COMMANDS:
            raise ConfigError(f"{source}: key 'command' must be one of {', '.join(COMMANDS)}, got {command!r}")
        components: dict[str, tuple[Component, ...]] = {}
        for kind in KINDS:
            if kind not in data:
                continue
            raw = data[kind]
            items = raw if isinstance(raw, list) else [raw]
            parsed = []
            for i, item in enumerate(items):
                where = f"{kind}[{i}]" if isinstance(raw, list) else kind
                if isinstance(item, str):
                    item = {"name": item}
                if not isinstance(item, Mapping):
                    raise ConfigError(f"{source}: key {where!r} must be a table with 'name' and 'options'")
                for key in item:
                    if key not in ("name", "options"):
                        raise UnknownNameError(f"key in {source} [{where}]", key, ["name", "options"])
                name = item.get("name")
                if not isinstance(name, str) or not name.strip():
                    raise ConfigError(f"{source}: key '{where}.name' must be a component name")
                opts = item.get("options", {})
                if not isinstance(opts, Mapping):
                    raise ConfigError(f"{source}: key '{where}.options' must be a table")
                parsed.append(Component(name, dict(opts)))
            components[kind] = tuple(parsed)
        opts = data.get("options", {})
        if not isinstance(opts, Mapping):
            raise ConfigError(f"{source}: key 'options' must be a table")
        opts = dict(opts)
        out = data.get("out")
        if out is not None and not isinstance(out, str):
            raise ConfigError(f"{source}: key 'out' must be a path, got {out!r}")
        if base_dir is not None:
            if out:
                out = str(_relative_to(base_dir, out))
            pretrained = opts.get("pretrained")
            if isinstance(pretrained, str) and _looks_like_path(pretrained):
                opts["pretrained"] = str(_relative_to(base_dir, pretrained))
        argv = data.get("argv", ())
        if not isinstance(argv, (list, tuple)):
            raise ConfigError(f"{source}: key 'argv' must be a list of strings")
        return cls(command=command, components=components, options=opts, out=out,
                   argv=tuple(str(a) for a in argv))

    def to_dict(self) -> dict[str, Any]:
        """The file structure: single components as tables, several as a list of tables."""
        data: dict[str, Any] = {"command": self.command}
        if self.out is not None:
            data["out"] = self.out
        if self.argv:
            data["argv"] = list(self.argv)
        data["options"] = _options_jsonable(self.options)
        for kind, items in self.components.items():
            entries = [{"name": c.name, "options": _options_jsonable(c.options)} for c in items]
            if not entries:
                continue
            several = _COMMAND_KINDS.get(self.command, {}).get(kind, False)
            data[kind] = entries if several else entries[0]
        return data

    def save(self, path: str | Path) -> Path:
        """Write the configuration atomically as ``.toml`` or ``.json`` (by suffix)."""
        path = Path(path)
        if path.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        elif path.suffix == ".toml":
            try:
                text = to_toml(self.to_dict())
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        else:
            raise ConfigError(f"{path}: a configuration file ends in .toml or .json")
        return atomic_write_text(path, text)

    def with_updates(self, *, components: Mapping[str, Sequence[Component]] | None = None,
                     options: Mapping[str, Any] | None = None,
                     component_options: Mapping[str, Mapping[str, Any]] | None = None,
                     out: str | None = None, argv: Sequence[str] | None = None) -> RunConfig:
        """A copy with components replaced, options and per-kind component options merged in.

        ``component_options`` apply to every component of the kind (all datasets of a
        pretrain mixture, for example), after ``components`` have been replaced.
        """
        merged = dict(self.components)
        for kind, items in (components or {}).items():
            merged[kind] = tuple(items)
        for kind, values in (component_options or {}).items():
            if not values:
                continue
            if not merged.get(kind):
                raise ConfigError(f"options given for {kind} ({', '.join(f'{kind}.{k}' for k in values)}) "
                                  f"but no {kind} is chosen; add --{kind} NAME")
            merged[kind] = tuple(Component(c.name, {**c.options, **values}) for c in merged[kind])
        return dataclasses.replace(
            self, components=merged, options={**self.options, **(options or {})},
            out=self.out if out is None else out, argv=self.argv if argv is None else tuple(argv))

    # -- validation ------------------------------------------------------------------
    def resolve(self, get_spec: Callable[[str, str], Any]) -> ResolvedConfig:
        """Check every name, option and value; fail before any work starts.

        Args:
            get_spec: ``get_spec(kind, name) -> spec`` (the plugin manager's ``get``), which
                raises :class:`~fwi_plugins.errors.UnknownNameError` for unknown names.

        Returns:
            A :class:`ResolvedConfig` whose ``config`` holds canonical names and every
            option value (defaults included), so that it re-runs exactly.

        Raises:
            ConfigError, OptionError, UnknownNameError: naming the offending key.
        """
        allowed = _COMMAND_KINDS[self.command]
        for kind, items in self.components.items():
            if kind not in allowed and items:
                raise ConfigError(f"key {kind!r}: {self.command} takes no {kind}")
            if len(items) > 1 and not allowed[kind]:
                raise ConfigError(f"key {kind!r}: {self.command} takes one {kind}, got {len(items)}")
        for kind in _REQUIRED[self.command]:
            if not self.components.get(kind):
                raise ConfigError(f"key {kind!r} is missing: choose one with --{kind} NAME "
                                  f"(list them with: fwi list {kind})")
        options = _parse_options(_OPTIONS_CLASS[self.command], self.options, owner=self.command)
        run_device(options.device)
        specs: dict[str, tuple[Any, ...]] = {}
        parsed: dict[str, tuple[Any, ...]] = {}
        canonical: dict[str, tuple[Component, ...]] = {}
        for kind, items in self.components.items():
            kind_specs, kind_opts, kind_items = [], [], []
            for component in items:
                spec = get_spec(kind, component.name)
                values = spec.parse_options(component.options)
                missing = spec.missing_requirements()
                if missing:
                    from ..errors import MissingDependencyError
                    raise MissingDependencyError(f"{kind} {spec.name!r}", missing)
                kind_specs.append(spec)
                kind_opts.append(values)
                kind_items.append(Component(spec.name, _options.to_dict(values)))
            specs[kind], parsed[kind], canonical[kind] = tuple(kind_specs), tuple(kind_opts), tuple(kind_items)
        if self.command == "pretrain":
            n = len(canonical["dataset"])
            if options.weights and len(options.weights) != n:
                raise ConfigError(f"option 'weights' has {len(options.weights)} values for {n} datasets; "
                                  f"give one weight per --dataset")
        if options.labels in ("none", "self") or options.lambda_physics > 0:
            if not canonical.get("physics"):
                raise ConfigError("key 'physics' is missing: lambda_physics > 0 (or labels='none' or 'self') "
                                  "needs a physics component; add --physics NAME")
        config = dataclasses.replace(self, components=canonical, options=_options.to_dict(options))
        return ResolvedConfig(config=config, specs=specs, component_options=parsed, options=options)

    def diff(self, other: RunConfig, *, ignore: Sequence[str] = ("argv", "options.device",
                                                                  "options.progress")) -> list[str]:
        """Keys whose values differ between two configurations (dotted, sorted)."""
        # TOML has no null: a None written to TOML reads back as "none" (which option
        # parsing turns into None again), so the two spellings are the same value here.
        a = {k: "none" if v is None else v for k, v in flatten_keys(self.to_dict()).items()}
        b = {k: "none" if v is None else v for k, v in flatten_keys(other.to_dict()).items()}
        keys = sorted(set(a) | set(b))
        return [k for k in keys if a.get(k) != b.get(k) and not any(
            k == i or k.startswith(i + ".") for i in ignore)]


def load_config(path: str | Path) -> RunConfig:
    """Read a configuration file (``.toml`` or ``.json``), e.g. a run directory's ``config.toml``.

    A run directory itself is accepted too: its ``config.toml`` is read.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "config.toml"
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    data = read_toml_or_json(path, what="a configuration file", error=ConfigError)
    return RunConfig.from_dict(data, source=str(path), base_dir=path.resolve().parent)


def run_device(device: str) -> str:
    """A run's ``device`` option (auto, cpu or cuda) as a device name; the rule is :func:`.device.resolve_device`'s.

    Only the three names a run option allows; anything else (``cuda:1``, a torch device) goes
    through :func:`.device.device_name` directly.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise OptionError(f"option 'device': {device!r} is not one of auto, cpu, cuda")
    if device == "cpu":
        return "cpu"  # without importing torch: checking a configuration stays cheap
    from .device import device_name

    try:
        return device_name(device)
    except OptionError:
        raise OptionError("option 'device' is 'cuda' but no CUDA device is available; use --device auto or cpu") \
            from None


# -- helpers ------------------------------------------------------------------------
def _parse_options(cls: type, values: Mapping[str, Any], *, owner: str) -> Any:
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key.replace("-", "_") not in names:
            raise UnknownNameError(f"{owner} option", key, names,
                                   hint=f"Every {owner} option is listed by: fwi {owner} --help")
    try:
        return _options.parse(cls, values, owner=owner)
    except FWIError:
        raise
    except (TypeError, ValueError) as exc:  # pragma: no cover - parse converts these already
        raise OptionError(f"options of {owner}: {exc}") from None


def _looks_like_path(value: str) -> bool:
    return value.endswith(".safetensors") or "/" in value or value.startswith(".")


def _relative_to(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _options_jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def flatten_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as one level of dotted keys (``a.b``, ``a[0].c``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_keys(value, full + "."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                out.update(flatten_keys(item, f"{full}[{i}]."))
        else:
            out[full] = value
    return out
