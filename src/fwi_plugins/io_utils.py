"""Atomic file writes (a file either appears whole or not at all) and small TOML/JSON reads."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            if tmp_path.is_dir():
                import shutil
                shutil.rmtree(tmp_path)
            else:
                tmp_path.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def read_toml_or_json(path: Path, *, what: str, error: type[Exception]) -> Any:
    """Parse a ``.toml`` or ``.json`` file; any other suffix or a syntax error raises ``error``.

    ``what`` names the file's role in the message ("a survey file", "a configuration file").
    """
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    raise error(f"{path}: {what} ends in .toml or .json")
