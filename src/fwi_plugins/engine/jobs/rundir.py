"""Run directories: where a job leaves its config, metrics, weights, predictions and figures.

A run directory is a plain folder (``runs/<name>`` by default)::

    runs/lora-flatvel/
        config.json      the resolved configuration (re-runnable with ``--config``)
        metrics.json     every metric the run computed
        adapter/         ...and whatever else the job writes

Every file is written atomically, so an interrupted run never leaves a half-written file
behind; a reader sees the old version or the new one.

A run directory knows its own files: ``.fwi-run.json`` (its :class:`OutputManifest`)
records what the run writes there, and a file found at one of those paths that the
manifest does not cover is someone else's, refused by name rather than replaced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DataError
from ...atomic import atomic_write_text, is_leftover

__all__ = ["MANIFEST", "OutputManifest", "RunDirectory", "summary_table", "to_jsonable"]

METRICS = "metrics.json"
#: The run directory's manifest: what the run wrote there (see :class:`OutputManifest`).
MANIFEST = ".fwi-run.json"
MANIFEST_FORMAT = "fwi-outputs-1"


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy/torch scalars and arrays, paths and tuples made JSON-friendly.

    Non-finite floats become ``None``: JSON has no NaN, and a file other tools can read
    matters more than the distinction.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return to_jsonable(value.tolist())
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return str(value)


def _holds_files(path: Path) -> bool:
    """Whether ``path`` is a file (or link), or a folder with a file somewhere inside (leftovers aside)."""
    if path.is_symlink() or path.is_file():
        return True
    if not path.is_dir():
        return False
    return any(not p.is_dir() and not any(is_leftover(Path(part)) for part in p.relative_to(path).parts)
               for p in path.rglob("*"))


class OutputManifest:
    """What one tool wrote into a folder, recorded in a hidden JSON file in that folder.

    Each name is a path relative to the folder; one ending in ``/`` is a folder the tool
    writes whole, everything inside it the tool's. The tool replaces only what its manifest
    covers: a file at another path is someone else's, and :meth:`claim` refuses it by name.

    Args:
        folder: the folder the tool writes into.
        tool: what the refusal says wrote the recorded files (``"fwi run"``, ``"fwi predict"``).
        name: the manifest's file name in ``folder``.
        hint: what the refusal suggests instead.
    """

    def __init__(self, folder: str | Path, *, tool: str, name: str = MANIFEST,
                 hint: str = "choose another --out, or move it away") -> None:
        self.folder = Path(folder)
        self.tool = tool
        self.path = self.folder / name
        self.hint = hint

    def exists(self) -> bool:
        return self.path.is_file()

    def names(self) -> set[str]:
        """The recorded names (none when there is no manifest yet)."""
        if not self.exists():
            return set()
        try:
            data = json.loads(self.path.read_text())
            names = data["files"]
            if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise TypeError("'files' is not a list of names")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: unreadable manifest of {self.tool} ({exc}); {self.hint}") from None
        return set(names)

    def covers(self, relative: str) -> bool:
        """Whether ``relative`` is recorded, or lies in a recorded folder."""
        names = self.names()
        parts = Path(relative.rstrip("/")).parts
        return (relative in names or relative.rstrip("/") in names
                or any("/".join(parts[:i]) + "/" in names for i in range(1, len(parts) + 1)))

    def foreign(self, *relatives: str) -> list[str]:
        """Those of ``relatives`` that hold a file the manifest does not cover."""
        found = []
        for relative in relatives:
            path = self.folder / relative.rstrip("/")
            if self.covers(relative) or not _holds_files(path):
                continue
            found.append(relative.rstrip("/"))
        return found

    def claim(self, *relatives: str) -> None:
        """Record ``relatives`` as the tool's, refusing any that already holds a file it did not write."""
        foreign = self.foreign(*relatives)
        if foreign:
            raise ConfigError(f"{self.folder / foreign[0]} was not written by {self.tool}, which would replace "
                              f"it; {self.hint}")
        self.record(*relatives)

    def record(self, *relatives: str) -> None:
        """Record ``relatives`` as the tool's without checking them (a folder it is known to have written)."""
        names = self.names()
        if set(relatives) <= names:
            return
        atomic_write_text(self.path, json.dumps({"format": MANIFEST_FORMAT, "tool": self.tool,
                                                 "files": sorted(names | set(relatives))}, indent=1) + "\n")


class RunDirectory:
    """One run's folder, with atomic writers for what a run leaves behind.

    Once the folder has a manifest (``fwi run`` and ``fwi pretrain`` make it, see
    :class:`OutputManifest`), a write to a path it does not cover is refused when a file is
    already there, and recorded otherwise.

    Args:
        path: the folder (it need not exist yet; writing creates it).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = OutputManifest(self.path, tool="fwi")

    # -- paths -----------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def resolve(self, relative: str | Path) -> Path:
        """The path of ``relative`` inside the run; refuses to step outside it."""
        relative = Path(relative)
        if relative.is_absolute() or ".." in relative.parts:
            raise DataError(f"{relative}: paths inside a run directory must be relative and stay inside it")
        return self.path / relative

    def exists(self, relative: str | Path) -> bool:
        return self.resolve(relative).exists()

    # -- writing -------------------------------------------------------------------
    def write_text(self, relative: str | Path, text: str) -> Path:
        path = self.resolve(relative)
        if self.manifest.exists():
            self.manifest.claim(Path(relative).as_posix())
        return atomic_write_text(path, text)

    def write_json(self, relative: str | Path, data: Any) -> Path:
        """Write ``data`` as indented JSON (numpy values and NaN handled, see :func:`to_jsonable`)."""
        return self.write_text(relative, json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")

    def write_metrics(self, metrics: Mapping[str, Any], *, merge: bool = False) -> Path:
        """Write ``metrics.json``; with ``merge``, update the existing file's top-level keys."""
        data = dict(self.read_metrics()) if merge and self.exists(METRICS) else {}
        data.update(metrics)
        return self.write_json(METRICS, data)

    # -- reading -------------------------------------------------------------------
    def read_json(self, relative: str | Path) -> Any:
        path = self.resolve(relative)
        if not path.is_file():
            raise DataError(f"{path} does not exist")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None

    def read_metrics(self) -> dict[str, Any]:
        return self.read_json(METRICS)


# -- terminal summary -----------------------------------------------------------------
_PREFERRED_ORDER = ("mae", "rmse", "ssim", "mae_ms", "rmse_ms", "data_misfit")
_LABELS = {"mae": "MAE", "rmse": "RMSE", "ssim": "SSIM", "mae_ms": "MAE (m/s)", "rmse_ms": "RMSE (m/s)",
           # The data_misfit metric is always ||simulated - observed|| / ||observed||, whatever misfit
           # the physics trains with, so that runs compare; the label says so.
           "data_misfit": "data misfit (relative L2)", "n_samples": "samples"}


def _format(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if key.endswith("_ms"):
        return f"{value:.1f}"
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def _scalar_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) or value is None:
                seen.setdefault(key, None)
    ordered = [k for k in _PREFERRED_ORDER if k in seen]
    return ordered + [k for k in seen if k not in ordered]


def summary_table(metrics: Mapping[str, Any]) -> str:
    """A plain-text table of metrics for the terminal.

    Args:
        metrics: either flat (``{"mae": 0.02, "ssim": 0.95}``), giving a two-column table,
            or by stage (``{"zero_shot": {...}, "adapted": {...}, "refined": {...}}``),
            giving one row per metric and one column per stage. Non-scalar entries (per-sample
            lists, nested details) are left out.

    Returns:
        The table, lines joined with ``\\n``, no trailing newline.
    """
    stages = {k: v for k, v in metrics.items() if isinstance(v, Mapping)}
    if stages:
        keys = _scalar_keys(list(stages.values()))
        header = ["metric", *stages]
        body = [[_LABELS.get(k, k), *(_format(stage.get(k), k) for stage in stages.values())] for k in keys]
    else:
        keys = _scalar_keys([metrics])
        header = ["metric", "value"]
        body = [[_LABELS.get(k, k), _format(metrics.get(k), k)] for k in keys]
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body)])
