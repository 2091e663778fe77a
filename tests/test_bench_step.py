"""benchmarks/device/bench_step.py runs on the CPU at toy sizes and records its figures with provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_step_smoke_on_cpu(tmp_path):
    out = tmp_path / "bench_step.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "device" / "bench_step.py"), "--device", "cpu",
               "--steps", "2", "--batch", "4", "--sizes", "tiny", "--warmup", "1", "--corpus", "8",
               "--compare-host", "--compare-steps", "1", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert "bench_step.py" in record["command"] and record["commit"] and record["hardware"]["torch"]
    (row,) = record["configurations"]
    assert (row["size"], row["batch"]) == ("tiny", 4)
    phases = row["data_ms"] + row["forward_backward_ms"] + row["optimizer_ms"]
    assert all(row[k] > 0 for k in ("data_ms", "forward_backward_ms", "optimizer_ms", "samples_per_s"))
    assert row["samples_per_s"] == pytest.approx(4 / (row["step_ms"] / 1e3))
    # A vit tiny step on 4 OpenFWI-size samples is some GFLOPs (about 16: 3 x the forward's ~5).
    assert 5e9 < row["flops_per_step"] < 5e10
    assert row["tflops_per_s"] == pytest.approx(row["flops_per_step"] / (row["step_ms"] / 1e3) / 1e12)
    assert phases > 0.3 * row["step_ms"]
    compare = record["compare_host"]
    assert set(compare["steps_per_s"]) == {"numpy", "device_resident"}
    assert all(v > 0 for v in compare["steps_per_s"].values())
    assert all(v > 0 for v in compare["data_path_us_per_batch"].values())
    assert "samples/s" in done.stdout and "TFLOP/s" in done.stdout
