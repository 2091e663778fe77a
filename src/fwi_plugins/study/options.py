"""What a study is asked to do: its options, parsed from text and checked, with messages naming the option.

Component names (backbone, PEFT methods, datasets, physics) are resolved through the plugin
manager, so a study runs on whatever a plugin registers; an unknown name says which option
held it and what exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import FWIError, OptionError

#: Methods that train every weight; every other method is a PEFT method of the foundation.
WHOLE = ("scratch", "full")
SCRATCH = "scratch"

#: The options ``--smoke`` shrinks, and to what: seconds on a CPU, random weights.
SMOKE = {"n_train": 8, "n_val": 3, "n_test": 4, "steps": 2, "batch_size": 4, "warmup_steps": 1,
         "scratch_cap": 4, "patience": 1, "specialist_maps": 16, "specialist_cap": 4}
SMOKE_DATASET = "salt:survey=small:nz=32:nx=32"
SMOKE_METHODS = ("scratch", "full", "lora")


@dataclass(frozen=True)
class TargetSpec:
    """A target dataset: a registered dataset name and its options (``NAME:KEY=VALUE:KEY=VALUE``)."""

    key: str
    dataset: str
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        shown = [f"{k}={v}" for k, v in self.options.items() if k != "path"]
        return self.dataset + (f" ({', '.join(shown)})" if shown else "")


@dataclass(frozen=True, kw_only=True)
class StudyOptions:
    """Everything a study's results depend on, and its device.

    The defaults are the fair protocol's (see docs/study.md): 200 training, 50 validation and
    100 test maps per target, 78 steps of 16 maps, a grid of three learning rates per method,
    scratch trained to convergence (at most 600 steps, patience 8), three seeds.
    """

    backbone: str = "vit"
    weights: str = "default"  # a shipped name, a .safetensors path, or "none" (a random foundation)
    backbone_options: Mapping[str, str] = field(default_factory=dict)
    methods: tuple[str, ...] = ("scratch", "full", "lora", "adapter", "ia3")
    peft_options: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: {"lora": {"r": "8", "alpha": "16"}})
    targets: tuple[TargetSpec, ...] = (TargetSpec("salt", "salt"),)
    physics: str = "deepwave"
    fractions: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 200
    n_val: int = 50
    n_test: int = 100
    steps: int = 78
    batch_size: int = 16
    warmup_steps: int = 6
    lambda_ssim: float = 1.0  # fwi run's: L1 + 1 x (1 - SSIM)
    lr_whole: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    lr_peft: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    scratch_cap: int = 600
    patience: int = 8
    val_every: int = 1
    specialist_maps: int = 1000
    specialist_cap: int = 1200
    data_seed: int = 0
    min_gain: float = 0.002
    device: str = "cpu"
    smoke: bool = False

    def grid(self, method: str) -> tuple[float, ...]:
        """The learning rates tried for ``method``."""
        return self.lr_whole if method in WHOLE else self.lr_peft

    @property
    def tune_seed(self) -> int:
        return self.seeds[0]

    @property
    def tune_fraction(self) -> float:
        return max(self.fractions)

    def maps(self, fraction: float) -> int:
        """Training maps a fraction stands for (at least one)."""
        return max(1, round(fraction * self.n_train))

    def plan_values(self) -> dict[str, Any]:
        """The options a study's results depend on, as JSON values (the device is left out)."""
        values = dataclasses.asdict(self)
        values.pop("device")
        values["targets"] = [[t.key, t.dataset, dict(t.options)] for t in self.targets]
        return json.loads(json.dumps(values))

    def fingerprint(self, weights_sha256: str) -> str:
        text = json.dumps({"options": self.plan_values(), "weights_sha256": weights_sha256}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- from text ---------------------------------------------------------------------------------
def items(text: str) -> list[str]:
    return [s.strip() for s in str(text).split(",") if s.strip()]


def _numbers(option: str, text: str, kind: type) -> tuple[Any, ...]:
    try:
        values = tuple(kind(x) for x in items(text))
    except ValueError:
        raise OptionError(f"{option}: expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not values:
        raise OptionError(f"{option}: give at least one value")
    if len(set(values)) < len(values):
        raise OptionError(f"{option}: a value is given twice in {text!r}")
    return values


def pairs(option: str, text: str, sep: str = ",") -> dict[str, str]:
    """``"r=8,alpha=16"`` -> ``{"r": "8", "alpha": "16"}``."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in str(text).split(sep) if i.strip()):
        key, eq, value = item.partition("=")
        if not (eq and key.strip() and value.strip()):
            raise OptionError(f"{option}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def peft_options(text: str) -> dict[str, dict[str, str]]:
    """``"lora.r=8,lora.alpha=16"`` -> ``{"lora": {"r": "8", "alpha": "16"}}``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in pairs("--peft-options", text).items():
        method, dot, name = key.partition(".")
        if not (dot and method and name):
            raise OptionError(f"--peft-options: expected METHOD.KEY=VALUE, got {key}={value}")
        out.setdefault(method, {})[name] = value
    return out


def target_specs(text: str) -> tuple[TargetSpec, ...]:
    """``"salt,openfwi:family=curvevel-a:path=/data/openfwi"`` -> one :class:`TargetSpec` each."""
    parsed = []
    for item in items(text):
        name, _, rest = item.partition(":")
        parsed.append((name.strip(), pairs("--dataset", rest, sep=":")))
    names = [name for name, _ in parsed]
    specs = []
    for name, options in parsed:
        # A dataset named once is its own key; one named twice is told apart by its options' values.
        shown = [v for k, v in options.items() if k != "path"] if names.count(name) > 1 else []
        key = re.sub(r"[^a-z0-9.]+", "-", "-".join([name, *shown]).lower()).strip("-")
        specs.append(TargetSpec(key=key, dataset=name, options=options))
    if not specs:
        raise OptionError("--dataset: give at least one dataset")
    keys = [s.key for s in specs]
    if len(set(keys)) < len(keys):
        raise OptionError(f"--dataset: two targets would share the name {keys!r}; give them different options")
    return tuple(specs)


def from_text(values: Mapping[str, Any], *, smoke: bool = False) -> StudyOptions:
    """Options from the CLI's text (``None``: the default, or the smoke run's), checked and resolved."""
    given = {k: v for k, v in values.items() if v is not None}
    out: dict[str, Any] = {"smoke": smoke}
    if smoke:
        out.update(SMOKE, weights="none", methods=SMOKE_METHODS, targets=target_specs(SMOKE_DATASET),
                   fractions=(1.0, 0.5))
    parsers = {"methods": lambda t: tuple(items(t)), "targets": target_specs, "peft_options": peft_options,
               "backbone_options": lambda t: pairs("--backbone-options", t),
               "fractions": lambda t: _numbers("--fractions", t, float),
               "seeds": lambda t: _numbers("--seeds", t, int),
               "lr_whole": lambda t: _numbers("--lr-grid-whole", t, float),
               "lr_peft": lambda t: _numbers("--lr-grid-peft", t, float)}
    for name, value in given.items():
        out[name] = parsers[name](value) if name in parsers else value
    if smoke:
        out = _shrunk(out, given)
    options = StudyOptions(**out)
    check(options)
    return resolve_names(options)


def _shrunk(out: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A smoke run keeps sizes at most the smoke run's, and two seeds and two rates of each grid at most."""
    for name, limit in SMOKE.items():
        out[name] = min(out[name], limit)
    defaults = StudyOptions()
    for name in ("seeds", "lr_whole", "lr_peft"):
        out[name] = tuple(out.get(name, getattr(defaults, name)))[:2]
    return out


# -- checks --------------------------------------------------------------------------------------
def check(o: StudyOptions) -> None:
    """Raise :class:`OptionError` naming the first option that cannot be right."""
    positive = {"--n-train": o.n_train, "--n-val": o.n_val, "--n-test": o.n_test, "--steps": o.steps,
                "--batch-size": o.batch_size, "--scratch-cap": o.scratch_cap, "--patience": o.patience,
                "--val-every": o.val_every}
    for option, value in positive.items():
        if value < 1:
            raise OptionError(f"{option} must be at least 1, got {value}")
    if o.specialist_maps < 0 or (o.specialist_maps and o.specialist_maps <= o.n_train):
        raise OptionError(f"--specialist-maps must be 0 (no specialist) or more than --n-train ({o.n_train}), "
                          f"got {o.specialist_maps}")
    if o.specialist_cap < 1:
        raise OptionError(f"--specialist-cap must be at least 1, got {o.specialist_cap}")
    if any(not 0 < f <= 1 for f in o.fractions):
        raise OptionError(f"--fractions must lie in (0, 1], got {', '.join(f'{f:g}' for f in o.fractions)}")
    if len({o.maps(f) for f in o.fractions}) < len(o.fractions):
        raise OptionError(f"--fractions: two fractions of {o.n_train} training maps round to the same number of maps")
    if any(lr <= 0 for lr in (*o.lr_whole, *o.lr_peft)):
        raise OptionError("--lr-grid-whole and --lr-grid-peft: learning rates must be positive")
    if any(s < 0 for s in o.seeds):
        raise OptionError("--seeds must be non-negative")
    if o.device not in ("auto", "cpu", "cuda"):
        raise OptionError(f"--device must be one of auto, cpu, cuda, got {o.device!r}")
    if o.lambda_ssim < 0 or o.warmup_steps < 0 or o.min_gain < 0:
        raise OptionError("--lambda-ssim, --warmup-steps and --min-gain must be non-negative")


def resolve_names(o: StudyOptions) -> StudyOptions:
    """``o`` with every component name in its registered spelling; an unknown one names its option."""
    from ..manager import get_plugin_manager

    manager = get_plugin_manager()

    def canonical(option: str, kind: str, name: str) -> str:
        try:
            return manager.get(kind, name).name
        except FWIError as exc:
            raise _named(option, exc) from None

    try:
        methods = tuple(m if m == SCRATCH else canonical("--peft", "peft", m) for m in o.methods)
    except FWIError as exc:
        raise _named("", exc, f"\n'{SCRATCH}' (the backbone from random weights, every weight trained) too.") from None
    if len(set(methods)) < len(methods):
        raise OptionError(f"--peft: a method is given twice in {', '.join(o.methods)}")
    targets = tuple(dataclasses.replace(t, dataset=canonical("--dataset", "dataset", t.dataset)) for t in o.targets)
    known_peft = {m for m in methods if m != SCRATCH} | ({"full"} if SCRATCH in methods else set())
    peft = dict(o.peft_options)
    if peft == dict(StudyOptions().peft_options):  # the defaults: kept for the methods studied only
        peft = {m: v for m, v in peft.items() if m in known_peft}
    for method in peft:
        if canonical("--peft-options", "peft", method) not in known_peft:
            raise OptionError(f"--peft-options: {method!r} is not among the methods studied ({', '.join(methods)})")
    return dataclasses.replace(o, backbone=canonical("--backbone", "backbone", o.backbone), methods=methods,
                               peft_options=peft,
                               targets=targets, physics=canonical("--physics", "physics", o.physics))


def _named(option: str, exc: FWIError, tail: str = "") -> FWIError:
    """``exc`` with its message led by the option that held the bad value (same exit code)."""
    named = FWIError(f"{option}: {exc}{tail}" if option else f"{exc}{tail}")
    named.exit_code = exc.exit_code
    return named
