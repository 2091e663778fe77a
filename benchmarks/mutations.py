"""Named mutations: plant one known bug at a time in a scratch copy and see whether its tests catch it.

Each mutation below is a bug a user would hit (a wrong answer, not a crash), with the tests
that are meant to catch it. The script copies the project (sources, tests, plugins, docs)
into a temporary folder once and, for each mutation:

1. runs the mutation's tests on the **unmutated** copy (the baseline; one run per distinct
   set of tests): they must pass, or the mutation is reported as ``baseline-failed``;
2. plants the mutation (its ``old`` text, which must occur exactly once in its file, is
   replaced by ``new``), runs the same tests again, and puts the file back.

A mutation is ``caught`` only when its baseline passes and the mutated run fails. The copy's
source roots (``src`` and every ``plugins/*/src``) come first on ``PYTHONPATH``, so the
tests, and subprocesses such as the ``fwi`` executable, import the copy rather than the
editable installs; before any test runs, every mutated module is imported once to check
that. The working tree is never modified.

A mutation whose text does not occur exactly once in its file is an error naming it, raised
before anything runs: after a refactor, update its ``path`` and ``old`` (they are data).

::

    python benchmarks/mutations.py                      # every mutation, a table at the end
    python benchmarks/mutations.py --subset ci          # the handful CI runs (minutes)
    python benchmarks/mutations.py --list
    python benchmarks/mutations.py --only lora-drop-proj --only ricker-peak-30pct
    python benchmarks/mutations.py --json benchmarks/results/mutations.json

Exit status 0 when every chosen mutation is caught, 1 when one survives or its baseline
fails or its run errs, 2 when a mutation no longer applies to the code.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "plugins", "docs", "examples", "benchmarks", "pyproject.toml", "README.md", "Makefile")
#: Not copied: build leftovers, and the plugins' egg-info folders, which on ``PYTHONPATH`` would
#: register each plugin a second time beside its installed distribution.
IGNORED = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", "runs", ".cache")


@dataclass(frozen=True)
class Mutation:
    """One planted bug: replace ``old`` (which must occur exactly once) by ``new`` in ``path``.

    Attributes:
        name: how the report and ``--only`` call it.
        path: the file, relative to the project root.
        old: the exact text to replace.
        new: what replaces it.
        tests: pytest ids (files or ``file::test``) meant to catch it.
        what: the bug, as a user would meet it.
        subsets: named subsets it belongs to (``ci``: quick tests, run by ``.ci/run``).
    """

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str
    subsets: frozenset[str] = field(default_factory=frozenset)


CI = frozenset({"ci"})
DW = "plugins/fwi-deepwave/src/fwi_deepwave/physics.py"
DW_TESTS = "plugins/fwi-deepwave/tests"
TW = "plugins/fwi-torchwave/src/fwi_torchwave/propagator.py"
TW_TESTS = "plugins/fwi-torchwave/tests"

MUTATIONS: tuple[Mutation, ...] = (
    # -- parameter-efficient fine-tuning ------------------------------------------------------
    Mutation("lora-drop-proj", "src/fwi_plugins/builtins/backbones.py",
             'peft_targets=("qkv", "proj"),', 'peft_targets=("qkv",),',
             ("tests/test_peft_exact_counts.py",),
             "vit offers LoRA only qkv: 0.90 % -> 0.60 % trainable"),
    Mutation("lora-half-rank", "src/fwi_plugins/builtins/peft_methods.py",
             "LoraConfig(r=o.r,", "LoraConfig(r=max(1, o.r // 2),",
             ("tests/test_peft_exact_counts.py",), "LoRA built with half the asked rank", CI),
    Mutation("lora-ignores-alpha", "src/fwi_plugins/builtins/peft_methods.py",
             "lora_alpha=o.alpha,", "",
             ("tests/test_peft_exact_counts.py",), "LoRA alpha left at peft's default"),
    Mutation("adapter-bottleneck-width", "src/fwi_plugins/builtins/adapted_model.py",
             "self.down = nn.Linear(channels, hidden)", "self.down = nn.Linear(channels, hidden * 2)",
             ("tests/test_peft_exact_counts.py",), "bottleneck twice as wide as asked"),
    Mutation("peft-check-allows-more", "src/fwi_plugins/testing.py",
             "if n_trainable > total_before:", "if n_trainable > total_before * 1.5:",
             ("tests/test_core_testing_checks.py",),
             "check_peft_method lets a method train more than the network has"),
    # -- the training loss and loop ------------------------------------------------------------
    Mutation("ssim-term-sign", "src/fwi_plugins/engine/training/losses.py",
             "lambda_ssim * (1.0 - ssim_torch(", "lambda_ssim * (1.0 + ssim_torch(",
             ("tests/test_engine_loss_formula.py",), "label loss L1 + lambda (1 + SSIM)", CI),
    Mutation("ssim-unscaled", "src/fwi_plugins/engine/training/losses.py",
             "ssim_torch(pred / 2 + 0.5, y / 2 + 0.5)", "ssim_torch(pred, y)",
             ("tests/test_engine_loss_formula.py",), "SSIM of the [-1, 1] maps instead of [0, 1]"),
    Mutation("l1-as-l2", "src/fwi_plugins/engine/training/losses.py",
             "loss = (pred - y).abs().mean()", "loss = (pred - y).square().mean()",
             ("tests/test_engine_loss_formula.py",), "the label loss squared instead of absolute"),
    Mutation("bf16-loss-under-autocast", "src/fwi_plugins/engine/training/loop.py",
             "    with autocast(device, options.amp):\n"
             "        pred = loop.net(loop.normalization.gathers_to_unit(x_in))\n"
             "    pred = pred.float()\n"
             "    y = None if velocity is None else loop.normalization.velocity_to_unit(velocity)\n"
             "    loss = batch_loss(",
             "    with autocast(device, options.amp):\n"
             "        pred = loop.net(loop.normalization.gathers_to_unit(x_in))\n"
             "        y = None if velocity is None else loop.normalization.velocity_to_unit(velocity)\n"
             "        loss = batch_loss(",
             ("tests/test_engine_amp.py::test_bf16_step_agrees_with_float32",),
             "with amp (bf16 autocast, as the shipped weights were trained) the loss is taken in bf16 too: "
             "SSIM's variances cancel", CI),
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
    # -- normalisation: of the gathers going in, of the predictions coming out ------------------
    Mutation("gathers-minmax-without-log", "src/fwi_plugins/data/dataset.py",
             "            return _signed_log_scalar(self.data_min), _signed_log_scalar(self.data_max)\n",
             "            return float(self.data_min), float(self.data_max)\n",
             ("tests/test_data_cache.py",),
             "the gathers' min-max scale taken from the raw range after the signed log: "
             "the network sees inputs squeezed near -1 .. 0", CI),
    Mutation("gathers-refitted-on-the-input", "src/fwi_plugins/engine/jobs/predict_normalization.py",
             "    elif not norm.fitted:\n", "    else:\n",
             ("tests/test_cli_executable.py::test_run_then_predict_with_its_adapter_reproduces_the_run",),
             "fwi predict scales gathers by the input's own range instead of the one the model was trained with"),
    Mutation("normalization-without-gathers-range", "src/fwi_plugins/engine/jobs/run_outputs.py",
             "json.dumps(normalization.to_dict(), indent=2)",
             "json.dumps({**normalization.to_dict(), 'data_min': None, 'data_max': None}, indent=2)",
             ("tests/test_cli_executable.py::test_run_then_predict_with_its_adapter_reproduces_the_run",),
             "the adapter's normalization.json loses the fitted gathers range"),
    Mutation("denormalise-with-openfwi-range", "src/fwi_plugins/data/dataset.py",
             "return (unit + 1.0) * (0.5 * (self.vmax - self.vmin)) + self.vmin",
             "return (unit + 1.0) * 1500.0 + 1500.0",
             ("tests/test_data_cache.py",),
             "predictions denormalised with OpenFWI's 1500-4500 m/s whatever range the model was trained on",
             CI),
    Mutation("denormalise-with-the-weights-range", "src/fwi_plugins/engine/inference.py",
             "    if normalization is None and transform is None and velocity_from_unit is None:\n"
             "        carried = config_of(model)\n"
             "        normalization = carried.normalization if carried is not None else None\n",
             "    carried = config_of(model)\n"
             "    if carried is not None and carried.normalization is not None:\n"
             "        normalization = carried.normalization\n",
             ("tests/test_engine_predict.py",),
             "predict() scales by the pretrained weights' normalisation even when given the model's own"),
    Mutation("corrupt-weights-metadata-read-as-none", "src/fwi_plugins/pretrained.py",
             "    except (SafetensorError, OSError, ValueError) as exc:\n"
             "        raise DataError(",
             "    except (SafetensorError, OSError, ValueError) as exc:\n"
             "        metadata = {}\n"
             "    if False:\n"
             "        raise DataError(",
             ("tests/test_hardening_inputs.py::"
              "test_predict_with_weights_whose_header_is_damaged_names_the_file_not_a_missing_normalisation",),
             "a damaged weights header reads as 'no normalisation' and the input is scaled by its own range"),
    # -- data, weights, acquisition --------------------------------------------------------------
    Mutation("cache-key-without-options", "src/fwi_plugins/data/cache_key.py",
             '"options": _jsonable(getattr(physics, "options", None)),', "",
             ("tests/test_data_cache_key.py",), "physics options left out of the simulation cache key"),
    Mutation("weights-not-loaded", "src/fwi_plugins/weights.py",
             "model.load_state_dict(tensors, strict=True)",
             "model.load_state_dict({k: v for k, v in tensors.items() if not k.endswith('bias')}, strict=False)",
             ("tests/test_backbones_contract.py",), "pretrained weights loaded without their biases"),
    Mutation("acquisition-time-not-stretched", "src/fwi_plugins/acquisition/mapping.py",
             "times = a * (np.arange(native.nt) * native.dt - native.delay) + user.delay",
             "times = (np.arange(native.nt) * native.dt - native.delay) + user.delay",
             ("tests/test_acquisition.py",),
             "a survey read through the acquisition map stretches space but not time: apparent velocities "
             "halve at scale 2", CI),
    Mutation("acquisition-depth-not-stretched", "src/fwi_plugins/acquisition/mapping.py",
             "native_z = np.arange(self.native.nz) * n_dx * a",
             "native_z = np.arange(self.native.nz) * n_dx",
             ("tests/test_acquisition.py",),
             "the prediction is written back onto the user's grid without the stretch in depth"),
    # -- physics: wavelet, Deepwave, torchwave ---------------------------------------------------
    Mutation("ricker-peak-30pct", "src/fwi_plugins/survey.py",
             "a = (np.pi * self.peak_freq * t) ** 2", "a = (np.pi * 1.3 * self.peak_freq * t) ** 2",
             ("tests/test_survey_wavelet.py", f"{DW_TESTS}/test_deepwave_analytic.py"),
             "the Ricker wavelet's peak frequency 30 % off"),
    Mutation("amplitude-1.5pct", DW,
             "data = pieces[0] if len(pieces) == 1 else torch.cat(pieces)",
             "data = 1.015 * (pieces[0] if len(pieces) == 1 else torch.cat(pieces))",
             (f"{DW_TESTS}/test_deepwave_analytic.py",), "simulated amplitudes 1.5 % too large"),
    Mutation("grid-spacing-0.6pct", DW,
             "                self.survey.dx,\n", "                self.survey.dx * 1.006,\n",
             (f"{DW_TESTS}/test_deepwave_analytic.py",), "the solver told a grid spacing 0.6 % off"),
    Mutation("torchwave-stencil-coefficient", TW,
             "SECOND = {2: (1.0,), 4: (4 / 3, -1 / 12),", "SECOND = {2: (1.0,), 4: (4 / 3, -1 / 6),",
             (f"{TW_TESTS}/test_torchwave_physics.py::test_gathers_match_deepwave",),
             "torchwave's 4th-order Laplacian with a wrong outer coefficient (the default accuracy)", CI),
    Mutation("torchwave-pml-linear-profile", TW,
             "sigma = sigma + sigma0 * fraction**2", "sigma = sigma + sigma0 * fraction",
             (f"{TW_TESTS}/test_torchwave_physics.py::test_gathers_match_deepwave",),
             "torchwave's PML damping grows linearly into the layer instead of quadratically: "
             "more reflections from the model's edges"),
    Mutation("torchwave-pml-no-frequency-shift", TW,
             "alpha = math.pi * freq * (1 - depth)", "alpha = 0.0 * depth",
             (f"{TW_TESTS}/test_torchwave_physics.py::test_gathers_match_deepwave",),
             "torchwave's C-PML without its frequency shift (alpha = 0): a plain PML"),
    # -- refinement ----------------------------------------------------------------------------
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
    # -- run tracking ----------------------------------------------------------------------------
    Mutation("tensorboard-epoch-at-epoch-number", "plugins/fwi-tensorboard/src/fwi_tensorboard/log.py",
             'step = int(metrics.get("step", epoch))', "step = epoch",
             ("plugins/fwi-tensorboard/tests/test_tensorboard_plugin.py::"
              "test_hooks_called_directly_write_what_they_are_given",),
             "TensorBoard draws epoch figures at the epoch number: they no longer line up with the step curves"),
    # -- the plugin system and the command line --------------------------------------------------
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


class MutationError(Exception):
    """A mutation that does not apply to the code (its text missing, or there more than once)."""


def mutated_text(mutation: Mutation, text: str) -> str:
    """``text`` with ``mutation`` planted; :class:`MutationError` naming it unless ``old`` occurs exactly once."""
    count = text.count(mutation.old)
    if count != 1:
        where = "does not occur" if count == 0 else f"occurs {count} times"
        raise MutationError(f"mutation {mutation.name!r}: its text {where} in {mutation.path} (expected exactly "
                            f"once); update the mutation's path and old text to the code it mutates")
    return text.replace(mutation.old, mutation.new)


def check_applies(mutations: Iterable[Mutation], root: Path = ROOT) -> None:
    """Raise :class:`MutationError` naming every mutation that does not apply to the files under ``root``."""
    problems = []
    for m in mutations:
        path = root / m.path
        if not path.is_file():
            problems.append(f"mutation {m.name!r}: {m.path} does not exist")
            continue
        try:
            mutated_text(m, path.read_text())
        except MutationError as exc:
            problems.append(str(exc))
    if problems:
        raise MutationError("\n".join(problems))


# -- running pytest ------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One pytest run: its exit code (``None``: timed out), counts, seconds and output."""

    code: int | None
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    output: str = ""

    @property
    def label(self) -> str:
        if self.code is None:
            return "timeout"
        return {0: "passed", 1: "failed", 5: "no-tests"}.get(self.code, f"error (pytest exit {self.code})")

    def first_failure(self) -> tuple[str, str]:
        """The first failed test's id and the first line of its assertion message."""
        lines = self.output.splitlines()
        test = next((line.removeprefix("FAILED ").split(" - ")[0] for line in lines if line.startswith("FAILED ")),
                    "")
        reason = next((line[1:].strip() for line in lines if line.startswith("E ")), "")
        return test, reason[:200]


def _counts(output: str) -> dict[str, int]:
    """pytest's summary line (``3 passed, 1 skipped in 2.1s``) as counts."""
    found: dict[str, int] = {}
    for line in reversed(output.splitlines()):
        pairs = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", line)
        if pairs and " in " in line:
            for number, word in pairs:
                found[word.rstrip("s") if word.startswith("error") else word] = int(number)
            break
    return found


Runner = Callable[[tuple[str, ...]], Outcome]


class Scratch:
    """A copy of the project in a temporary folder, with the environment that makes its tests import it."""

    def __init__(self, folder: Path, *, timeout: float) -> None:
        self.folder, self.timeout = folder, timeout
        ignore = shutil.ignore_patterns(*IGNORED)
        for name in COPIED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, folder / name, ignore=ignore, symlinks=True)
            elif source.is_file():
                shutil.copy2(source, folder / name)
        self.roots = [folder / "src", *sorted(p for p in (folder / "plugins").glob("*/src") if p.is_dir())]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        extra = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
        env["PYTHONPATH"] = os.pathsep.join([*map(str, self.roots), *extra])
        env.setdefault("OMP_NUM_THREADS", "1")
        env["FWI_CACHE_DIR"] = str(self.folder / ".cache")
        # A file mutated and put back within a second keeps its size and mtime: cached bytecode
        # could then be the mutant's. Nothing is cached, so every run compiles what is there.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def module_of(self, path: str) -> str | None:
        """The importable module a project file is, or ``None`` (a test file, data)."""
        file = self.folder / path
        for root in self.roots:
            if file.is_relative_to(root) and file.suffix == ".py":
                parts = file.relative_to(root).with_suffix("").parts
                return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        return None

    def check_imports(self, mutations: Iterable[Mutation]) -> None:
        """Every mutated module, and each root's packages, imported from the copy; else SystemExit."""
        modules = {m for m in map(self.module_of, (m.path for m in mutations)) if m}
        modules |= {p.name for root in self.roots for p in root.iterdir() if (p / "__init__.py").is_file()}
        code = ("import importlib, sys\n"
                "for name in sys.argv[1:]:\n"
                "    print(name, importlib.import_module(name).__file__)\n")
        done = subprocess.run([sys.executable, "-c", code, *sorted(modules)], cwd=self.folder, env=self.env(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"importing the scratch copy's modules failed:\n{done.stderr[-3000:]}")
        elsewhere = [line for line in done.stdout.splitlines()
                     if not line.split(" ", 1)[1].startswith(str(self.folder))]
        if elsewhere:
            raise SystemExit("the scratch copy is not what the tests import:\n" + "\n".join(elsewhere))

    @contextmanager
    def planted(self, mutation: Mutation) -> Iterator[None]:
        """The copy with ``mutation`` planted, put back afterwards."""
        target = self.folder / mutation.path
        original = target.read_text()
        target.write_text(mutated_text(mutation, original))
        try:
            yield
        finally:
            target.write_text(original)

    def pytest(self, tests: tuple[str, ...]) -> Outcome:
        started = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                                  cwd=self.folder, env=self.env(), capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return Outcome(code=None, seconds=time.perf_counter() - started, output="timed out")
        output = done.stdout + done.stderr
        counts = _counts(output)
        return Outcome(code=done.returncode, passed=counts.get("passed", 0), failed=counts.get("failed", 0),
                       skipped=counts.get("skipped", 0), seconds=time.perf_counter() - started, output=output)


# -- judging ------------------------------------------------------------------------------------
def baseline_ok(outcome: Outcome) -> bool:
    """A baseline that counts: pytest passed and at least one test ran (all skipped proves nothing)."""
    return outcome.code == 0 and outcome.passed > 0


def verdict(baseline: Outcome, mutated: Outcome | None) -> str:
    """``caught`` only when the baseline passes and the mutated run fails its tests."""
    if not baseline_ok(baseline):
        return "baseline-failed"
    assert mutated is not None
    if mutated.code == 1:
        return "caught"
    if mutated.code == 0:
        return "survived"
    return "timeout" if mutated.code is None else "error"


def _record(outcome: Outcome, *, reused: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {"outcome": outcome.label, "passed": outcome.passed, "failed": outcome.failed,
                              "skipped": outcome.skipped, "seconds": round(outcome.seconds, 1)}
    if reused:
        record["reused"] = True  # the same tests' baseline, run once for an earlier mutation
    return record


def run_mutations(mutations: Sequence[Mutation], *, baseline: Runner, mutated: Callable[[Mutation], Outcome],
                  report: Callable[[dict[str, Any]], None] = lambda r: None) -> list[dict[str, Any]]:
    """Each mutation's baseline (once per set of tests), then its mutated run where the baseline passed."""
    baselines: dict[tuple[str, ...], Outcome] = {}
    results = []
    for m in mutations:
        reused = m.tests in baselines
        if not reused:
            baselines[m.tests] = baseline(m.tests)
        base = baselines[m.tests]
        after = mutated(m) if baseline_ok(base) else None
        status = verdict(base, after)
        result: dict[str, Any] = {"name": m.name, "path": m.path, "tests": list(m.tests), "what": m.what,
                                  "status": status, "baseline": _record(base, reused=reused)}
        if after is not None:
            test, reason = after.first_failure()
            result["mutated"] = {**_record(after), "caught_by": test, "reason": reason}
        if status != "caught":
            result["detail"] = (after or base).output[-2000:]
        report(result)
        results.append(result)
    return results


def _print(result: dict[str, Any]) -> None:
    base, after = result["baseline"], result.get("mutated")
    seconds = f"{base['seconds']:6.1f}s{'*' if base.get('reused') else ' '} {after['seconds'] if after else 0:6.1f}s"
    print(f"{result['status']:15s} {result['name']:38s} {seconds}  {after['caught_by'] if after else ''}", flush=True)
    if result["status"] == "caught":
        print(f"{'':71s}{after['reason'] if after else ''}", flush=True)
    else:
        print(result["detail"], file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutation (repeatable)")
    parser.add_argument("--subset", choices=sorted({s for m in MUTATIONS for s in m.subsets}),
                        help="run only the mutations of this subset (ci: quick tests, run by .ci/run)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--json", type=Path, help="also write the results (with command, commit, hardware) here")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run")
    args = parser.parse_args(argv)

    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTATIONS if (not args.only or m.name in args.only)
              and (args.subset is None or args.subset in m.subsets)]
    if args.list:
        for m in chosen:
            print(f"{m.name:38s} {m.path}\n{'':38s} {' '.join(m.tests)}\n{'':38s} {m.what}")
        return 0
    try:
        check_applies(chosen)
    except MutationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fwi-mutation-") as tmp:
        scratch = Scratch(Path(tmp), timeout=args.timeout)
        scratch.check_imports(chosen)

        def run_mutated(m: Mutation) -> Outcome:
            with scratch.planted(m):
                return scratch.pytest(m.tests)

        print(f"{'status':15s} {'mutation':38s} baseline mutated  first failing test", flush=True)
        results = run_mutations(chosen, baseline=scratch.pytest, mutated=run_mutated, report=_print)
    seconds = time.perf_counter() - started
    caught = sum(r["status"] == "caught" for r in results)
    counts = {s: sum(r["status"] == s for r in results) for s in sorted({r["status"] for r in results})}
    print(f"\n{caught} of {len(results)} mutations caught in {seconds:.0f} s ({counts})")
    if args.json:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from results_file import write_results

        write_results(args.json, {"subset": args.subset or ("only" if args.only else "all"), "caught": caught,
                                  "total": len(results), "seconds": round(seconds, 1), "results": results})
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
