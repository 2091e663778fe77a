"""Run folders read back: what ``fwi runs`` lists and ``fwi runs compare`` sets side by side.

A run folder is one that ``fwi run``, ``fwi pretrain`` or ``fwi refine`` wrote: it holds the
resolved ``config.json`` and, once the job finished, ``metrics.json``. Only JSON is read
here (no torch), so listing a hundred runs takes a moment.

A run is *complete* when ``metrics.json`` is there and its training was not stopped by the
``max_minutes`` budget; *partial* otherwise (stopped, failed or still running), with the steps
its last checkpoint reached.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DataError

__all__ = ["FIELDS", "RunSummary", "compare_rows", "find_runs", "format_compare", "format_list", "read_run"]

CONFIG, METRICS = "config.json", "metrics.json"
_COMPONENTS = ("backbone", "peft", "dataset", "physics")
# Folders a run writes that never hold another run: not searched.
_INSIDE_RUNS = {"checkpoints", "predictions", "figures", "adapter", "tensorboard", "self-training"}

#: Every field of a summary: key, label, and which way is better for numbers (+1 higher, -1 lower, 0 neither).
FIELDS: tuple[tuple[str, str, int], ...] = (
    ("command", "command", 0),
    ("backbone", "backbone", 0),
    ("peft", "peft", 0),
    ("dataset", "dataset", 0),
    ("physics", "physics", 0),
    ("labels", "labels", 0),
    ("pretrained", "pretrained", 0),
    ("zero_shot_ssim", "zero-shot SSIM", +1),
    ("adapted_ssim", "adapted SSIM", +1),
    ("refined_ssim", "refined SSIM", +1),
    ("zero_shot_mae", "zero-shot MAE", -1),
    ("adapted_mae", "adapted MAE", -1),
    ("refined_mae", "refined MAE", -1),
    ("zero_shot_mae_ms", "zero-shot MAE (m/s)", -1),
    ("adapted_mae_ms", "adapted MAE (m/s)", -1),
    ("val_mae", "validation MAE", -1),
    ("trainable", "trainable parameters", 0),
    ("epochs", "epochs", 0),
    ("steps", "steps", 0),
    ("train_time", "training time (s)", -1),
    ("wall_time", "wall time (s)", -1),
    ("status", "status", 0),
)
_LABELS = {key: label for key, label, _ in FIELDS}
_BETTER = {key: better for key, _, better in FIELDS}


@dataclass(frozen=True)
class RunSummary:
    """One run folder: where it is, its key figures (:data:`FIELDS`) and its flattened settings."""

    path: Path
    fields: dict[str, Any]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run": str(self.path), **self.fields, "settings": self.settings}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def _is_run(folder: Path) -> bool:
    return (folder / CONFIG).is_file() or (folder / METRICS).is_file()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _section(metrics: Mapping[str, Any], name: str, key: str) -> Any:
    return _mapping(metrics.get(name)).get(key)


def _names(config: Mapping[str, Any], kind: str) -> str | None:
    entry = config.get(kind)
    entries = [entry] if isinstance(entry, Mapping) else list(entry or []) if isinstance(entry, list) else []
    names = [str(e.get("name")) for e in entries if isinstance(e, Mapping) and e.get("name")]
    return ",".join(names) or None


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as flat ``key: value`` pairs (``lr``, ``backbone.dim``, ...), for comparison."""
    flat: dict[str, Any] = {}
    for kind in _COMPONENTS:
        entry = config.get(kind)
        entries = [entry] if isinstance(entry, Mapping) else entry if isinstance(entry, list) else []
        for i, e in enumerate(entries):
            if not isinstance(e, Mapping):
                continue
            prefix = kind if len(entries) == 1 else f"{kind}[{i}]"
            for key, value in (e.get("options") or {}).items():
                flat[f"{prefix}.{key}"] = value
    flat.update(config.get("options") or {})
    return flat


def _checkpoint_state(folder: Path) -> Mapping[str, Any]:
    """The state of the run's latest training checkpoint (steps and epochs a partial run reached), or ``{}``."""
    try:
        latest = json.loads((folder / "checkpoints" / "latest.json").read_text())
        state = json.loads((folder / "checkpoints" / str(latest["path"]) / "state.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return state if isinstance(state, Mapping) else {}


def read_run(folder: str | Path) -> RunSummary:
    """The summary of one run folder.

    Raises:
        DataError: ``folder`` is not a run folder (no ``config.json`` nor ``metrics.json``), or
            one of them is not valid JSON.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: no such run folder")
    if not folder.is_dir() or not _is_run(folder):
        raise DataError(f"{folder}: not a run folder (it holds no {CONFIG} or {METRICS} written by fwi run, "
                        f"fwi pretrain or fwi refine)")
    config = _read_json(folder / CONFIG) if (folder / CONFIG).is_file() else {}
    metrics = _read_json(folder / METRICS) if (folder / METRICS).is_file() else None
    if not isinstance(config, Mapping) or not isinstance(metrics, (Mapping, type(None))):
        raise DataError(f"{folder}: {CONFIG} and {METRICS} must each hold a JSON object")
    options = _mapping(config.get("options"))
    fields: dict[str, Any] = {"command": config.get("command")}
    fields.update({kind: _names(config, kind) for kind in _COMPONENTS})
    fields["labels"] = options.get("labels")
    fields["pretrained"] = options.get("pretrained")
    m = _mapping(metrics)
    training = _mapping(m.get("training"))
    for stage in ("zero_shot", "adapted", "refined"):
        fields[f"{stage}_ssim"] = _section(m, stage, "ssim")
        fields[f"{stage}_mae"] = _section(m, stage, "mae")
    fields["zero_shot_mae_ms"] = _section(m, "zero_shot", "mae_ms")
    fields["adapted_mae_ms"] = _section(m, "adapted", "mae_ms")
    fields["val_mae"] = _section(m, "validation", "val_mae")
    parameters = m.get("parameters")
    fields["trainable"] = parameters.get("trainable") if isinstance(parameters, Mapping) else parameters
    state = training if metrics is not None else _checkpoint_state(folder)
    fields["epochs"] = state.get("epochs", state.get("epoch"))
    fields["steps"] = state.get("steps", state.get("step"))
    fields["train_time"] = state.get("wall_time")
    fields["wall_time"] = _section(m, "timing", "total")
    fields["status"] = "complete" if metrics is not None and training.get("complete", True) else "partial"
    return RunSummary(path=folder, fields=fields, settings=_settings(config))


def find_runs(roots: Iterable[str | Path]) -> list[Path]:
    """The run folders among ``roots`` and below them, sorted by path within each root.

    Raises:
        DataError: a root that does not exist or is not a folder, named.
    """
    found: list[Path] = []
    for root in map(Path, roots):
        if not root.exists():
            raise DataError(f"{root}: no such folder")
        if not root.is_dir():
            raise DataError(f"{root}: not a folder (fwi runs lists run folders, or folders that hold them)")
        here: list[Path] = []
        for current, dirs, _files in os.walk(root):
            path = Path(current)
            if _is_run(path):
                here.append(path)
                dirs[:] = []  # a run's own folders hold no other runs
            else:
                dirs[:] = sorted(d for d in dirs if d not in _INSIDE_RUNS and not d.startswith("."))
        found.extend(sorted(here))
    return found


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if key == "trainable" else str(value)
    if not math.isfinite(value):
        return str(value)
    if key not in _LABELS:  # a setting: as given
        return f"{value:g}"
    if key.endswith("_ms") or key.endswith("_time"):
        return f"{value:.1f}"
    return f"{value:.4f}"


def _table(rows: Sequence[Sequence[str]], left: Iterable[int] = (0,)) -> str:
    """Rows as aligned columns: those in ``left`` flush left, the others (numbers) flush right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = set(left)

    def line(row: Sequence[str]) -> str:
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])])


_LIST_COLUMNS = ("backbone", "peft", "dataset", "zero_shot_ssim", "adapted_ssim", "zero_shot_mae", "adapted_mae",
                 "val_mae", "steps", "wall_time", "status")
_LIST_HEADERS = {"zero_shot_ssim": "SSIM 0-shot", "adapted_ssim": "SSIM adapted", "zero_shot_mae": "MAE 0-shot",
                 "adapted_mae": "MAE adapted", "val_mae": "val MAE", "wall_time": "wall (s)"}


def format_list(runs: Sequence[RunSummary], base: Path | None = None) -> str:
    """One line per run: its folder and key figures (columns empty for every run are left out)."""
    columns = [c for c in _LIST_COLUMNS if c == "status" or any(r.fields.get(c) is not None for r in runs)]
    header = ["run", *(_LIST_HEADERS.get(c, c) for c in columns)]
    body = [[_display(r.path, base), *(_cell(r.fields.get(c), c) for c in columns)] for r in runs]
    text = {0} | {i + 1 for i, c in enumerate(columns) if c in ("backbone", "peft", "dataset", "status")}
    return _table([header, *body], left=text)


def _display(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            pass
    return str(path)


def compare_rows(runs: Sequence[RunSummary]) -> list[dict[str, Any]]:
    """The rows of a comparison: every key figure, then every setting in which the runs differ.

    Each row is ``{"key", "label", "values" (one per run), "differs", "best"}``; ``best`` is the
    index of the run with the best value of a figure that has a better direction (SSIM
    higher, MAE and time lower) when the runs differ, else ``None``.
    """
    rows = []
    for key, label, better in FIELDS:
        values = [r.fields.get(key) for r in runs]
        if all(v is None for v in values):
            continue
        rows.append(_row(key, label, values, better))
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(r.settings))
    for key in keys:
        values = [r.settings.get(key) for r in runs]
        if any(v != values[0] for v in values[1:]):
            rows.append(_row(f"settings.{key}", key, values, 0))
    return rows


def _row(key: str, label: str, values: list[Any], better: int) -> dict[str, Any]:
    differs = any(v != values[0] for v in values[1:])
    numbers = [(v, i) for i, v in enumerate(values)
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    best = None
    if differs and better and len(numbers) > 1:
        best = (max(numbers) if better > 0 else min(numbers))[1]
    return {"key": key, "label": label, "values": values, "differs": differs, "best": best}


def format_compare(runs: Sequence[RunSummary], base: Path | None = None) -> str:
    """Runs side by side: one column per run, one row per figure; ``*`` marks a row whose values
    differ, ``<`` the best value of such a row; settings rows list only what differs."""
    header = ["", *(_display(r.path, base) for r in runs)]
    body = []
    for row in compare_rows(runs):
        key = row["key"].removeprefix("settings.")
        cells = [_cell(v, key) + (" <" if i == row["best"] else "  " if row["best"] is not None else "")
                 for i, v in enumerate(row["values"])]
        body.append([("* " if row["differs"] else "  ") + row["label"], *cells])
    legend = "* differs between runs; < best of the row (SSIM highest, MAE and time lowest)"
    return _table([header, *body]) + "\n" + legend
