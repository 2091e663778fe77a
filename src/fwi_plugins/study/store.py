"""A study folder: its plan, one result file per finished task, written atomically, so a study resumes.

Layout::

    OUT/plan.json            the options and weights digest the results depend on
    OUT/tasks/<task id>.json one finished run each
    OUT/study.json, study.md, study_*.png   the report (rewritten at the end of every session)

A second invocation on the same folder skips every task whose file exists; one with a different
plan is refused, naming the options that differ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import OptionError

FORMAT = "fwi-study-1"


def jsonable(value: Any) -> Any:
    """JSON's ``default``: non-finite floats become ``null``, numpy scalars plain numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(_finite(data), indent=1, allow_nan=False, default=jsonable)


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, Mapping):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


class StudyFolder:
    """The finished tasks of one study, on disk."""

    def __init__(self, path: Path, plan: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.plan = dict(plan)
        self.tasks_dir = self.path / "tasks"

    def open(self) -> StudyFolder:
        """Create the folder or check that it holds this plan; raises :class:`OptionError` otherwise."""
        plan_file = self.path / "plan.json"
        if plan_file.is_file():
            try:
                earlier = json.loads(plan_file.read_text())
            except json.JSONDecodeError:
                raise OptionError(f"--out {self.path}: plan.json is not JSON; give another folder") from None
            if earlier.get("fingerprint") != self.plan["fingerprint"]:
                raise OptionError(self._mismatch(earlier))
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(plan_file, dumps({"format": FORMAT, **self.plan}))
        self.tasks_dir.mkdir(exist_ok=True)
        return self

    def _mismatch(self, earlier: Mapping[str, Any]) -> str:
        old, new = earlier.get("options", {}), self.plan["options"]
        differ = [f"{k.replace('_', '-')} ({old.get(k)!r} there, {new.get(k)!r} now)"
                  for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if earlier.get("weights_sha256") != self.plan["weights_sha256"]:
            differ.append("the foundation weights")
        shown = "; ".join(differ) or "its format"
        return (f"--out {self.path} holds a study with another plan; it differs in {shown}. Give another --out, "
                f"or the same options to resume it")

    def results(self) -> dict[str, dict[str, Any]]:
        """Every finished task's record, by task id (a file that does not parse is not finished)."""
        out = {}
        for file in sorted(self.tasks_dir.glob("*.json")):
            try:
                out[file.stem] = json.loads(file.read_text())
            except json.JSONDecodeError:
                continue
        return out

    def put(self, task_id: str, record: Mapping[str, Any]) -> None:
        atomic_write_text(self.tasks_dir / f"{task_id}.json", dumps(record))

    def write(self, name: str, text: str) -> Path:
        atomic_write_text(self.path / name, text)
        return self.path / name
