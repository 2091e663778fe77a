"""Settings files: the one TOML writer, and reading a ``.toml`` or ``.json`` file of settings."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else json.dumps(key)


def to_toml(data: Mapping[str, Any]) -> str:
    """``data`` as TOML text: top-level scalars first, then tables and arrays of tables.

    ``None`` is written as ``"none"`` (TOML has no null); floats keep every digit, and
    NaN and infinities their TOML spelling.

    Raises:
        ValueError: a value TOML cannot hold.
    """
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, Mapping) or (isinstance(value, list) and value
                                          and all(isinstance(v, Mapping) for v in value)):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables:
        items = value if isinstance(value, list) else [value]
        header = f"[[{_toml_key(key)}]]" if isinstance(value, list) else f"[{_toml_key(key)}]"
        for item in items:
            lines.append("")
            lines.append(header)
            for k, v in item.items():
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def read_toml_or_json(path: Path, *, what: str, error: type[Exception]) -> Any:
    """Parse a ``.toml`` or ``.json`` file; any other suffix or a syntax error raises ``error``.

    ``what`` names the file's role in the message ("a survey file", "a configuration file").
    """
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    raise error(f"{path}: {what} ends in .toml or .json")
