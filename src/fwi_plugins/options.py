"""Option dataclasses: typed, documented, parsed from ``key=value`` strings.

A component's options are a frozen dataclass whose fields carry their help in
``metadata["help"]``. :func:`option` is the short way to declare one::

    @dataclass(frozen=True, kw_only=True)
    class LoraOptions:
        r: int = option(8, "rank of the low-rank update")
        alpha: float = option(16.0, "scaling numerator; the update is scaled by alpha / r")
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from .errors import OptionError, UnknownNameError

_MISSING = dataclasses.MISSING
_UNIONS = (typing.Union, types.UnionType)


def option(default: Any = _MISSING, help: str = "", *, choices: tuple[str, ...] | None = None,
           architecture: bool = True) -> Any:
    """Declare a dataclass field with help text (and, optionally, allowed string values).

    ``architecture=False`` marks a backbone option that pretrained weights do not fix
    (dropout, say): it may take another value than the one the weights were trained with.
    """
    metadata: dict[str, Any] = {"help": help}
    if not architecture:
        metadata["architecture"] = False
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, (list, dict, set)):
        frozen = tuple(default) if not isinstance(default, dict) else dict(default)
        return dataclasses.field(default_factory=lambda: frozen, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """What ``fwi show`` prints about one option."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": _jsonable(self.default),
                "help": self.help, "choices": list(self.choices) if self.choices else None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if value is _MISSING:
        return None
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "choice"
    if origin in (tuple, list):
        return "list"
    if origin in _UNIONS:
        args = [a for a in get_args(tp) if a is not type(None)]
        return _type_name(args[0]) if len(args) == 1 else "value"
    return getattr(tp, "__name__", str(tp))


def describe(cls: type | None) -> list[OptionInfo]:
    """List the options of an option dataclass (empty for ``None``)."""
    if cls is None:
        return []
    hints = _hints(cls)
    infos = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else _MISSING)
        tp = hints[f.name]
        choices = f.metadata.get("choices")
        if choices is None and get_origin(tp) is Literal:
            choices = tuple(str(a) for a in get_args(tp))
        infos.append(OptionInfo(f.name, _type_name(tp), default, f.metadata.get("help", ""), choices))
    return infos


def _coerce(key: str, raw: Any, tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in _UNIONS:
        args = [a for a in get_args(tp) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null", "")):
            if type(None) in get_args(tp):
                return None
        return _coerce(key, raw, args[0]) if len(args) == 1 else raw
    if origin is Literal:
        allowed = get_args(tp)
        for a in allowed:
            if raw == a or str(raw) == str(a):
                return a
        raise OptionError(f"option {key!r}: {raw!r} is not one of {', '.join(map(str, allowed))}")
    if origin in (tuple, list):
        (inner, *rest) = get_args(tp) or (str,)
        if isinstance(raw, str):
            raw = raw.strip()
            if raw.startswith("["):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise OptionError(f"option {key!r}: {raw!r} is not a JSON list ({exc.msg})") from None
            else:
                raw = [p.strip() for p in raw.split(",") if p.strip()]
        if not isinstance(raw, (list, tuple)):
            raise OptionError(f"option {key!r}: expected a list, got {raw!r}")
        return tuple(_coerce(key, item, inner) for item in raw)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise OptionError(f"option {key!r}: expected true or false, got {raw!r}")
    if tp in (int, float):
        if isinstance(raw, bool):
            raise OptionError(f"option {key!r}: expected {tp.__name__}, got {raw!r}")
        try:
            value = tp(raw)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(1e400) is int(inf)
            raise OptionError(f"option {key!r}: expected {tp.__name__}, got {raw!r}") from None
        if tp is int and isinstance(raw, float) and raw != value:
            raise OptionError(f"option {key!r}: expected an integer, got {raw!r}")
        return value
    if tp is str:
        return str(raw)
    return raw


def parse(cls: type | None, values: Mapping[str, Any] | None = None, *, owner: str = "") -> Any:
    """Build an option dataclass from a mapping of (possibly string) values.

    Unknown keys raise :class:`UnknownNameError` with a "Did you mean" hint; values are
    coerced to the field's type; a ``ValueError`` from the dataclass's own validation
    becomes an :class:`OptionError` naming the owner.
    """
    values = dict(values or {})
    if cls is None:
        if values:
            raise UnknownNameError(f"option of {owner or 'this component'}", next(iter(values)), [],
                                   hint="This component takes no options.")
        return None
    if dataclasses.is_dataclass(values) and isinstance(values, cls):
        return values
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, raw in values.items():
        norm = key.replace("-", "_")
        if norm not in names:
            raise UnknownNameError(f"option of {owner or cls.__name__}", key, names,
                                   hint=f"See: fwi show {owner.replace(' ', ' ')}" if owner else "")
        field = next(f for f in dataclasses.fields(cls) if f.name == norm)
        value = _coerce(norm, raw, hints[norm])
        choices = field.metadata.get("choices")
        if choices and value not in choices:
            raise OptionError(f"option {norm!r} of {owner or cls.__name__}: {value!r} is not one of "
                              f"{', '.join(choices)}")
        kwargs[norm] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"options of {owner or cls.__name__}: {exc}") from None


def to_dict(options: Any) -> dict[str, Any]:
    """The option values as plain JSON-able data (for configs and model cards)."""
    if options is None:
        return {}
    return {k: _jsonable(v) for k, v in dataclasses.asdict(options).items()}
