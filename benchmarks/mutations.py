"""Named mutations: plant one known bug at a time in a scratch copy and see which tests catch it.

Run it before claiming that a test covers something: each mutation below is a bug that once
went unnoticed by the suite (issue 16). The script copies the project (sources, tests, docs)
into a temporary folder, applies one mutation there, and runs the tests named for it with
that copy first on ``PYTHONPATH`` (the editable installs point at the working tree, so the
copy shadows them; subprocesses such as the ``fwi`` executable inherit it). The working tree
is never modified. A mutation whose text no longer occurs in its file is reported as
``stale``: update it alongside the code it mutates.

::

    python benchmarks/mutations.py                      # every mutation, a table at the end
    python benchmarks/mutations.py --list
    python benchmarks/mutations.py --only lora-drop-proj --only ricker-peak-30pct
    python benchmarks/mutations.py --json benchmarks/results/mutations.json

Exit status 1 when any mutation survives (no named test fails) or is stale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "plugins", "docs", "examples", "pyproject.toml", "README.md")
SOURCE_ROOTS = ("src", "plugins/fwi-deepwave/src", "plugins/fwi-example/src")


@dataclass(frozen=True)
class Mutation:
    """One planted bug: replace ``old`` by ``new`` (exactly once) in ``path``."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


DW = "plugins/fwi-deepwave/src/fwi_deepwave/physics.py"
DW_TESTS = "plugins/fwi-deepwave/tests"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation("lora-drop-proj", "src/fwi_plugins/builtins/backbones.py",
             'peft_targets=("qkv", "proj"),', 'peft_targets=("qkv",),',
             ("tests/test_peft_exact_counts.py",),
             "vit offers LoRA only qkv: 0.90 % -> 0.60 % trainable"),
    Mutation("lora-half-rank", "src/fwi_plugins/builtins/peft_methods.py",
             "LoraConfig(r=o.r,", "LoraConfig(r=max(1, o.r // 2),",
             ("tests/test_peft_exact_counts.py",), "LoRA built with half the asked rank"),
    Mutation("lora-ignores-alpha", "src/fwi_plugins/builtins/peft_methods.py",
             "lora_alpha=o.alpha,", "",
             ("tests/test_peft_exact_counts.py",), "LoRA alpha left at peft's default"),
    Mutation("adapter-bottleneck-width", "src/fwi_plugins/builtins/adapted_model.py",
             "self.down = nn.Linear(channels, hidden)", "self.down = nn.Linear(channels, hidden * 2)",
             ("tests/test_peft_exact_counts.py",), "bottleneck twice as wide as asked"),
    Mutation("ssim-term-sign", "src/fwi_plugins/engine/training/losses.py",
             "lambda_ssim * (1.0 - ssim_torch(", "lambda_ssim * (1.0 + ssim_torch(",
             ("tests/test_engine_loss_formula.py",), "label loss L1 + lambda (1 + SSIM)"),
    Mutation("ssim-unscaled", "src/fwi_plugins/engine/training/losses.py",
             "ssim_torch(pred / 2 + 0.5, y / 2 + 0.5)", "ssim_torch(pred, y)",
             ("tests/test_engine_loss_formula.py",), "SSIM of the [-1, 1] maps instead of [0, 1]"),
    Mutation("l1-as-l2", "src/fwi_plugins/engine/training/losses.py",
             "loss = (pred - y).abs().mean()", "loss = (pred - y).square().mean()",
             ("tests/test_engine_loss_formula.py",), "the label loss squared instead of absolute"),
    Mutation("normalization-without-gathers-range", "src/fwi_plugins/engine/jobs/run_outputs.py",
             "json.dumps(normalization.to_dict(), indent=2)",
             "json.dumps({**normalization.to_dict(), 'data_min': None, 'data_max': None}, indent=2)",
             ("tests/test_cli_executable.py::test_run_then_predict_with_its_adapter_reproduces_the_run",),
             "the adapter's normalization.json loses the fitted gathers range"),
    Mutation("cache-key-without-options", "src/fwi_plugins/data/cache.py",
             '"options": _jsonable(getattr(physics, "options", None)),', "",
             ("tests/test_data_cache_key.py",), "physics options left out of the simulation cache key"),
    Mutation("amplitude-1.5pct", DW,
             "data = pieces[0] if len(pieces) == 1 else torch.cat(pieces)",
             "data = 1.015 * (pieces[0] if len(pieces) == 1 else torch.cat(pieces))",
             (f"{DW_TESTS}/test_deepwave_analytic.py",), "simulated amplitudes 1.5 % too large"),
    Mutation("grid-spacing-0.6pct", DW,
             "                self.survey.dx,\n", "                self.survey.dx * 1.006,\n",
             (f"{DW_TESTS}/test_deepwave_analytic.py",), "the solver told a grid spacing 0.6 % off"),
    Mutation("ricker-peak-30pct", "src/fwi_plugins/survey.py",
             "a = (np.pi * self.peak_freq * t) ** 2", "a = (np.pi * 1.3 * self.peak_freq * t) ** 2",
             ("tests/test_survey_wavelet.py", f"{DW_TESTS}/test_deepwave_analytic.py"),
             "the Ricker wavelet's peak frequency 30 % off"),
    Mutation("continuation-unfiltered-simulated", "src/fwi_plugins/engine/refinement/loops.py",
             "simulated = lowpass(simulated, cutoff, self.dt)",
             "simulated = simulated",
             ("tests/test_engine_refine_reference.py",),
             "frequency continuation compares unfiltered simulated data with low-passed observed data"),
    Mutation("refine-batch-wide-peak", "src/fwi_plugins/engine/refinement/loops.py",
             "peak = grad.abs().amax(dim=tuple(range(1, grad.ndim)), keepdim=True)",
             "peak = grad.abs().amax()",
             ("tests/test_engine_refine_reference.py",),
             "refinement step normalised by one gradient peak for the whole batch"),
    Mutation("no-epoch-reseeding", "src/fwi_plugins/engine/training/checkpoint.py",
             "    torch.manual_seed(seed * 100_003 + epoch * 1_009 + rank)\n", "",
             ("tests/test_engine_loss_formula.py::test_resume_with_dropout_matches_the_uninterrupted_run",),
             "per-epoch re-seeding removed: a resumed run draws other dropout masks"),
    Mutation("ddp-no-gradient-averaging", "src/fwi_plugins/engine/training/distributed.py",
             "    return DistributedDataParallel(model, device_ids=[info.local_rank] "
             "if device.startswith(\"cuda\") else None)",
             "    return model",
             ("tests/test_engine_ddp.py",), "DDP wrapping removed: ranks train apart"),
    Mutation("ddp-no-metric-reduction", "src/fwi_plugins/engine/training/distributed.py",
             "    dist.all_reduce(t)\n", "",
             ("tests/test_engine_ddp.py",), "the metrics all-reduce does nothing"),
    Mutation("weights-not-loaded", "src/fwi_plugins/weights.py",
             "model.load_state_dict(tensors, strict=True)",
             "model.load_state_dict({k: v for k, v in tensors.items() if not k.endswith('bias')}, strict=False)",
             ("tests/test_backbones_contract.py",), "pretrained weights loaded without their biases"),
    Mutation("peft-check-allows-more", "src/fwi_plugins/testing.py",
             "if n_trainable > total_before:", "if n_trainable > total_before * 1.5:",
             ("tests/test_core_testing_checks.py",),
             "check_peft_method lets a method train more than the network has"),
    Mutation("hook-exercised-only-in-a-comment", "tests/test_misfit_registry.py",
             "    def fwi_misfits():\n"
             "        yield MisfitSpec(name=\"l1\", factory=l1, description=\"mean absolute difference\")\n",
             "    # fwi_misfits: exercised elsewhere\n    pass\n",
             ("tests/test_core_hook_docs.py",),
             "the only test implementing fwi_misfits replaced by a comment naming it"),
    Mutation("cli-error-to-stdout", "src/fwi_plugins/cli/common.py",
             'click.secho(f"error: {exc}", fg="red", err=True)', 'click.secho(f"error: {exc}", fg="red")',
             ("tests/test_cli_executable.py",), "user errors printed on stdout"),
)


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", "runs")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore, symlinks=True)
        elif source.is_file():
            shutil.copy2(source, dest / name)


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(scratch / p) for p in SOURCE_ROOTS]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    env["FWI_CACHE_DIR"] = str(scratch / ".cache")
    return env


def _pytest(scratch: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                              cwd=scratch, env=_env(scratch), capture_output=True, text=True, timeout=timeout)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, output = -1, "timed out"
    return code, output, time.perf_counter() - started


def _first_failure(output: str) -> tuple[str, str]:
    """The first failed test's id and the first line of its assertion message."""
    test = next((line.removeprefix("FAILED ").split(" - ")[0] for line in output.splitlines()
                 if line.startswith("FAILED ")), "")
    reason = next((line[1:].strip() for line in output.splitlines() if line.startswith("E ")), "")
    return test, reason[:160]


def run_one(mutation: Mutation, *, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="fwi-mutation-") as tmp:
        scratch = Path(tmp)
        _copy_tree(scratch)
        target = scratch / mutation.path
        text = target.read_text()
        if text.count(mutation.old) != 1:
            return {"name": mutation.name, "status": "stale", "caught_by": "",
                    "detail": f"{mutation.path}: the text to mutate occurs {text.count(mutation.old)} times"}
        target.write_text(text.replace(mutation.old, mutation.new))
        # The copy must be what the tests import, or every mutation would survive.
        probe = subprocess.run([sys.executable, "-c", "import fwi_plugins; print(fwi_plugins.__file__)"],
                               cwd=scratch, env=_env(scratch), capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(scratch)):
            raise SystemExit(f"the scratch copy is not imported first (got {probe.stdout.strip()!r})")
        code, output, seconds = _pytest(scratch, mutation.tests, timeout)
    if code == 0:
        status = "survived"
    elif code == 1:
        status = "caught"
    else:
        status = "error"
    test, reason = _first_failure(output)
    return {"name": mutation.name, "status": status, "caught_by": test, "reason": reason,
            "seconds": round(seconds, 1), "what": mutation.what,
            "detail": "" if status == "caught" else output[-2000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutation (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutation")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    if args.list:
        for m in chosen:
            print(f"{m.name:38s} {m.path}\n{'':38s} {m.what}")
        return 0

    results = []
    for m in chosen:
        result = run_one(m, timeout=args.timeout)
        results.append(result)
        print(f"{result['status']:9s} {m.name:38s} {result.get('seconds', 0):6.1f}s  {result['caught_by']}",
              flush=True)
        if result["status"] == "caught":
            print(f"{'':49s}{result['reason']}", flush=True)
        else:
            print(result["detail"], file=sys.stderr)
    caught = sum(r["status"] == "caught" for r in results)
    print(f"\n{caught} of {len(results)} mutations caught")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"caught": caught, "total": len(results), "results": results}, indent=2)
                             + "\n")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
