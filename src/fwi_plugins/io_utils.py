"""Atomic writes of files and folders (either appears whole or not at all), and small TOML/JSON reads and writes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


#: Temporaries of atomic writes are named ``.<name>.<random>.part``: hidden, and
#: recognisable as leftovers of a killed write (see :func:`remove_leftovers`).
PART_SUFFIX = ".part"


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it
    os.umask(mask)
    return mask


def respect_umask(path: str | Path) -> None:
    """Give a file or folder made by ``tempfile`` (always 0600 / 0700) the mode the umask asks for.

    A folder's contents are set too, so a folder filled and then renamed into place reads
    like one written in place.
    """
    path = Path(path)
    mask = current_umask()
    if path.is_dir():
        os.chmod(path, 0o777 & ~mask)
        for inner in path.rglob("*"):
            if not inner.is_symlink():
                os.chmod(inner, (0o777 if inner.is_dir() else 0o666) & ~mask)
    elif path.exists():
        os.chmod(path, 0o666 & ~mask)


def is_leftover(path: Path) -> bool:
    """Whether ``path`` is the temporary of an atomic write that never finished."""
    return path.name.startswith(".") and path.name.endswith(PART_SUFFIX)


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temporaries that killed atomic writes left anywhere under ``folder``.

    Only for a folder no other process is writing to: a write in progress looks the same.

    Returns:
        What was removed.
    """
    import shutil

    found = [p for p in Path(folder).rglob(f".*{PART_SUFFIX}") if is_leftover(p)]
    removed = []
    for path in sorted(found, key=lambda p: len(p.parts)):
        if not path.exists() and not path.is_symlink():
            continue  # inside a leftover folder removed already
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    What appears has the mode the umask asks for, as if written in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        respect_umask(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            if tmp_path.is_dir():
                import shutil
                shutil.rmtree(tmp_path)
            else:
                tmp_path.unlink()
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


def replace_dir(new: str | Path, target: str | Path) -> None:
    """Give folder ``new`` the name ``target``, replacing the folder there if any.

    Where the system can swap two names in one step, ``target`` always names a whole
    folder, old or new; elsewhere the old folder is renamed aside just before (an
    instant without it, never a half-written one). The old folder is then deleted.
    """
    new, target = Path(new), Path(target)
    if not target.exists() and not target.is_symlink():
        os.replace(new, target)
        return
    import shutil

    if target.is_dir() and not target.is_symlink() and _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # holds the old folder now
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=PART_SUFFIX, dir=target.parent))
    os.replace(target, aside / target.name)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; it replaces ``path`` whole if the block succeeds.

    What appears has the modes the umask asks for, as if written in place.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent))
    try:
        yield tmp
        respect_umask(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


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
