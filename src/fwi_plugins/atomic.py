"""Atomic writes: a file or folder either appears whole, with the modes the umask asks for, or not at all.

Temporaries are named ``.<name>.<random>.part`` beside their target, so a killed write
leaves something :func:`remove_leftovers` recognises.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


def _name_target(exc: BaseException, tmp: Path, path: Path) -> None:
    """Make a failed write's :class:`OSError` name the file asked for, not its temporary (or nothing)."""
    if isinstance(exc, OSError) and (exc.filename is None or str(exc.filename).startswith(str(tmp))):
        exc.filename = str(path)


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
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            if tmp_path.is_dir():
                import shutil
                shutil.rmtree(tmp_path)
            else:
                tmp_path.unlink()
        _name_target(exc, tmp_path, path)
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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_target(exc, tmp, path)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
