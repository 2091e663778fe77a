"""A folder held by one process at a time: a lock file naming its owner's pid and host.

Two jobs writing one run directory would leave it holding parts of each; the second is
refused instead, naming the first. The lock is a file (``.fwi-run.lock``) made whole in
one step, so it never reads half-written. A process that dies without releasing it
cannot block the folder for ever: a lock whose pid no longer runs on this host is stale,
and the next job takes it over.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from ...errors import ConfigError

__all__ = ["LOCK", "FolderLock"]

LOCK = ".fwi-run.lock"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OverflowError:
        return False
    return True


class FolderLock:
    """The lock of one folder.

    Args:
        folder: the folder (it must exist to be locked).
        what: how the refusal names the folder ("run directory").
    """

    def __init__(self, folder: str | Path, *, what: str = "run directory") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.what = what

    def _mine(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock: ``{"pid", "host", "since"}``; ``{}`` when the file is unreadable; None when free."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else {}

    def _is_mine(self, holder: dict[str, Any] | None) -> bool:
        return (holder is not None and holder.get("pid") == os.getpid()
                and holder.get("host") == socket.gethostname())

    def _is_stale(self, holder: dict[str, Any]) -> bool:
        return bool(holder) and holder.get("host") == socket.gethostname() and not _alive(int(holder["pid"]))

    def _create(self) -> None:
        """Make the lock file whole in one step; FileExistsError when there is one."""
        fd, tmp = tempfile.mkstemp(prefix=f"{LOCK}.", suffix=".new", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(self._mine()) + "\n")
            os.link(tmp, self.path)  # fails, whole, if the lock exists
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def acquire(self) -> None:
        """Hold the folder, taking over a stale lock.

        Raises:
            ConfigError: another live process holds it; the message names the folder and the process.
        """
        for _ in range(3):
            try:
                self._create()
                return
            except FileExistsError:
                pass
            holder = self.holder()
            if holder is None:
                continue  # released meanwhile
            if self._is_mine(holder):
                return  # this process already holds it (jobs run one after another in one process)
            if not self._is_stale(holder):
                raise ConfigError(self._refusal(holder))
            self._take_over(holder)
        raise ConfigError(self._refusal(self.holder() or {}))

    def _take_over(self, stale: dict[str, Any]) -> None:
        """Remove a stale lock, unless another process replaced it meanwhile."""
        aside = self.folder / f"{LOCK}.{os.getpid()}.stale"
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError):
            moved = {}
        if moved != stale:  # a live process's fresh lock: give it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        aside.unlink(missing_ok=True)

    def _refusal(self, holder: dict[str, Any]) -> str:
        if not holder:
            return (f"{self.what} {self.folder} is locked by {self.path}, which is unreadable; if no fwi process "
                    f"is writing there, delete that file, or choose another --out")
        since = f", since {holder['since']}" if holder.get("since") else ""
        return (f"{self.what} {self.folder} is in use by another fwi process (pid {holder['pid']} on host "
                f"{holder.get('host', '?')}{since}); wait for it to finish, or choose another --out")

    def release(self) -> None:
        """Give the folder up (only a lock this process holds)."""
        if self._is_mine(self.holder()):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
