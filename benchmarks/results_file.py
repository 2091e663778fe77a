"""Benchmark results as files: every figure with the command, commit, weights digest and hardware behind it.

    from results_file import write_results
    write_results("benchmarks/results/wavelets.json", {"scores": ...}, weights="default")
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checked-out commit, with ``+dirty`` when the tree has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def weights_digest(weights: str, backbone: str = "vit") -> str:
    """The state digest of ``weights`` as the backbone loads them (the same the checkpoints record)."""
    from fwi_plugins import api
    from fwi_plugins.weights import state_digest

    return state_digest(api.build_backbone(backbone, pretrained=weights))


def write_results(path: str | Path, figures: dict[str, Any], *, weights: str | None = None,
                  backbone: str = "vit") -> Path:
    """Write ``figures`` with their provenance to ``path`` (JSON, atomically)."""
    from fwi_plugins.atomic import atomic_path

    record = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "commit": commit(),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "hardware": hardware()}
    if weights is not None:
        record["weights"] = weights
        record["weights_digest"] = weights_digest(weights, backbone)
    record.update(figures)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")
    return path
