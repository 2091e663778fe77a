"""The engine's option schemas: what ``fwi run`` and ``fwi pretrain`` take as ``-o KEY=VALUE``.

:class:`TrainOptions` holds the training loop's options, shared by both commands;
:class:`RunOptions` and :class:`PretrainOptions` add each command's own. Every field carries
its default and help text, and every value is checked when an instance is made.
:mod:`fwi_plugins.engine.config` reads them from configuration files and the command line.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Literal

from .. import options as _options
from ..options import option

#: The seeds a job takes: what numpy's and torch's generators both accept, with room for the
#: per-epoch seeds derived from them (see :func:`fwi_plugins.engine.training.checkpoint.seed_epoch`).
SEED_MAX = 2**32 - 1

__all__ = ["AUGMENTATIONS", "SEED_MAX", "PretrainOptions", "RunOptions", "TrainOptions", "augment_names",
           "options_help"]

#: The gather augmentations of :mod:`fwi_plugins.engine.training.augment`, in the order they are applied.
AUGMENTATIONS = ("band", "phase", "noise", "dead", "gain")


def augment_names(text: str) -> tuple[str, ...]:
    """The augmentations named by the option ``augment``, each once, in :data:`AUGMENTATIONS` order.

    ``text`` is comma-separated names (any case, spaces ignored) or ``all``; empty: none.
    Two spellings of the same set give the same tuple (checkpoints compare it).

    Raises:
        ValueError: an unknown name, with a "Did you mean" and the allowed names.
    """
    names = {part.strip().lower() for part in str(text).split(",")} - {""}
    if "all" in names:
        return AUGMENTATIONS
    for name in sorted(names):
        if name not in AUGMENTATIONS:
            close = difflib.get_close_matches(name, (*AUGMENTATIONS, "all"), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"option 'augment': unknown augmentation {name!r}.{hint} Allowed: "
                             f"{', '.join(AUGMENTATIONS)}, or 'all' (comma-separated; empty for none)")
    return tuple(n for n in AUGMENTATIONS if n in names)


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """Options of the training loop shared by ``fwi run`` (adaptation) and ``fwi pretrain``."""

    epochs: int = option(10, "passes over the training data")
    batch_size: int = option(4, "samples per optimisation step (per process under torchrun)")
    lr: float = option(2e-3, "peak learning rate of AdamW")
    weight_decay: float = option(0.01, "AdamW decoupled weight decay")
    warmup_epochs: float = option(0.5, "epochs of linear learning-rate warm-up before cosine decay "
                                       "(fractions allowed)")
    min_lr_ratio: float = option(0.0, "final learning rate as a fraction of lr at the end of cosine decay")
    grad_clip: float = option(1.0, "clip the gradient norm to this value (0 disables clipping)")
    lambda_physics: float = option(0.0, "weight of the physics data-misfit term in the loss (0 disables it)")
    lambda_ssim: float = option(0.0, "weight of a structural term (1 - SSIM, OpenFWI's window) added to the L1 "
                                      "label loss; 0 disables it")
    physics_samples: int = option(2, "samples of each batch that the physics term simulates "
                                      "(0 = the whole batch); bounds the cost of the physics term")
    labels: Literal["full", "none", "self"] = option(
        "full", "'full' trains on velocity labels; 'none' adapts with the physics misfit alone (label-free); "
                "'self' (fwi run) adapts label-free by self-training on its own predictions refined by FWI")
    seed: int = option(0, "random seed: same seed and same hardware give the same metrics")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "where to train: a GPU when present (auto), "
                                                            "or cpu / cuda")
    amp: bool = option(True, "bfloat16 mixed precision for the network on CUDA (physics stays float32)")
    select_best: bool = option(True, "end with the weights of the epoch that scored best on the validation "
                                     "split (val_mae, or val_misfit without labels); epoch 0 is the "
                                     "starting network, so adapting never ends worse on validation")
    eval_batch_size: int = option(16, "samples per batch when predicting for evaluation")
    max_steps: int = option(0, "stop after this many optimisation steps in all; the learning-rate schedule "
                               "ends there (0 = epochs decide)")
    max_minutes: float = option(0.0, "wall-time budget of one invocation, in minutes: when it is spent the loop "
                                     "writes a checkpoint and stops, and the same command resumes (0 = none)")
    checkpoint_minutes: float = option(10.0, "also checkpoint within an epoch every this many minutes "
                                             "(0 = at the end of each epoch only)")
    progress: bool = option(True, "show progress bars")
    log_every_steps: int = option(10, "call the fwi_train_step hook (per-step loss, learning rate, samples/s) every "
                                      "this many optimisation steps, when a plugin implements it (0 = never)")
    augment: str = option("", "gather augmentations applied to each training batch, comma-separated from "
                              "band, phase, noise, dead, gain, or 'all'; empty for none")
    augment_prob: float = option(0.5, "probability that band, phase, noise and dead each alter a training "
                                      "sample (gain alters every sample); used when augment is set")

    def __post_init__(self) -> None:
        _positive(self, "epochs", "batch_size", "eval_batch_size")
        if not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"option 'seed' must lie in 0..{SEED_MAX}, got {self.seed!r}")
        augment_names(self.augment)
        if not (math.isfinite(self.augment_prob) and 0.0 <= self.augment_prob <= 1.0):
            raise ValueError(f"option 'augment_prob' must lie in [0, 1], got {self.augment_prob!r}")
        _finite_non_negative(self, "lr", "weight_decay", "warmup_epochs", "grad_clip", "lambda_physics",
                             "lambda_ssim", "max_minutes", "checkpoint_minutes")
        if self.log_every_steps < 0:
            raise ValueError(f"option 'log_every_steps' must be >= 0, got {self.log_every_steps!r}")
        if self.max_steps < 0:
            raise ValueError(f"option 'max_steps' must be >= 0, got {self.max_steps!r}")
        if self.lr <= 0:
            raise ValueError(f"option 'lr' must be positive, got {self.lr!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"option 'min_lr_ratio' must lie in [0, 1], got {self.min_lr_ratio!r}")
        if self.physics_samples < 0:
            raise ValueError(f"option 'physics_samples' must be >= 0, got {self.physics_samples!r}")
        if self.labels == "none" and self.lambda_physics <= 0:
            raise ValueError("option 'lambda_physics' must be positive when labels='none': label-free "
                             "adaptation learns from the physics misfit alone")


@dataclass(frozen=True, kw_only=True)
class RunOptions(TrainOptions):
    """Options of the main job, ``fwi run``."""

    epochs: int = option(6, "passes over the training data")
    batch_size: int = option(16, "samples per optimisation step (per process under torchrun)")
    lambda_ssim: float = option(1.0, "weight of a structural term (1 - SSIM, OpenFWI's window) added to the L1 "
                                     "label loss; 0 disables it")
    pretrained: str = option("default", "foundation weights: 'default' (the backbone's shipped weights, "
                                        "if any), a shipped NAME, a .safetensors PATH, or 'none'")
    train_fraction: float = option(1.0, "fraction of the target training split to adapt on (0 < f <= 1)")
    n_eval: int = option(0, "test samples to evaluate (0 = the whole test split)")
    n_misfit: int = option(4, "test samples whose data misfit is computed by simulation (0 = none)")
    refine_samples: int = option(2, "test predictions refined by physics-based FWI (0 = no refinement)")
    refine_iterations: int = option(10, "FWI iterations per refined prediction (lbfgs: misfit-and-gradient "
                                           "evaluations per map)")
    refine_lr: float = option(0.01, "FWI step size as a fraction of the velocity range (0.01 of 1500-4500 m/s "
                                    "is at most 30 m/s per iteration)")
    refine_step: Literal["lbfgs", "normalized", "adam"] = option(
        "lbfgs", "FWI update rule: lbfgs (L-BFGS per map, shaped by the refine_mute/smooth/depth_power/tv "
                 "defaults), normalized (steepest descent, "
                 "largest step refine_lr) or adam (every cell moves about refine_lr: noisier models)")
    refine_smooth: float | None = option(None, "smooth the FWI update with a Gaussian of this many grid cells "
                                               "(0: none; none: the rule's default, 2 for lbfgs, 0 otherwise)")
    refine_mute: int | None = option(None, "rows at the top (sources and receivers) that FWI leaves unchanged, "
                                           "then a taper over as many (none: the rule's default, 3 for lbfgs, "
                                           "0 otherwise)")
    refine_depth_power: float | None = option(None, "scale the FWI update of row z by ((z + 1) / depth) ** this "
                                                    "to offset the gradient's decay with depth (none: the rule's "
                                                    "default, 1 for lbfgs, 0 otherwise)")
    refine_tv: float | None = option(None, "weight of total variation against the normalised data misfit: "
                                           "favours blocky maps (none: the rule's default, 0.02 for lbfgs, "
                                           "0 otherwise)")
    refine_prior: float = option(0.0, "weight of the distance from the prediction against the normalised data "
                                      "misfit (0: none)")
    refine_time_limit: float = option(0.0, "FWI wall-clock seconds per refined map; refinement stops there and "
                                           "keeps the model reached (0 = no limit)")
    refine_frequencies: tuple[float, ...] = option((), "low-pass cutoffs in Hz for frequency continuation "
                                                      "during refinement, low to high (empty = full band)")
    self_rounds: int = option(2, "labels=self: rounds of predict, refine by FWI, train on the refined maps")
    self_samples: int = option(32, "labels=self: training records refined per round (a new draw each round)")
    self_keep: float = option(0.05, "labels=self: a refined map becomes a target only if refinement lowered "
                                    "its data misfit by at least this fraction")
    figures: bool = option(True, "write PNG figures into the run directory")
    cache_dir: str = option("", "simulation cache folder ('' = the dataset's default cache)")
    init: str = option("", "weights to start from: a shipped name of the backbone or a .safetensors path "
                           "('' = random initialisation); their normalisation is kept, so training "
                           "continues on the scale the weights learned")

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(not (math.isfinite(f) and f > 0) for f in self.refine_frequencies):
            raise ValueError(f"option 'refine_frequencies' must hold positive cutoffs in Hz, "
                             f"got {list(self.refine_frequencies)}")
        if self.refine_samples and len(self.refine_frequencies) > self.refine_iterations:
            raise ValueError(f"option 'refine_frequencies' has {len(self.refine_frequencies)} stages but "
                             f"refine_iterations is {self.refine_iterations}; each stage needs an iteration")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"option 'train_fraction' must lie in (0, 1], got {self.train_fraction!r}")
        _positive(self, "self_rounds", "self_samples")
        if not 0.0 <= self.self_keep < 1.0:
            raise ValueError(f"option 'self_keep' must lie in [0, 1), got {self.self_keep!r}")
        if self.labels == "self" and self.refine_iterations < 1:
            raise ValueError("option 'refine_iterations' must be at least 1 when labels='self': self-training "
                             "refines its predictions by FWI")
        for name in ("n_eval", "n_misfit", "refine_samples", "refine_iterations"):
            if getattr(self, name) < 0:
                raise ValueError(f"option {name!r} must be >= 0, got {getattr(self, name)!r}")
        _finite_non_negative(self, "refine_lr", "refine_prior", "refine_time_limit")
        _finite_non_negative(self, "refine_smooth", "refine_mute", "refine_depth_power", "refine_tv", optional=True)
        if not self.pretrained.strip():
            raise ValueError("option 'pretrained' is empty; use 'default', 'none', a NAME or a PATH")


@dataclass(frozen=True, kw_only=True)
class PretrainOptions(TrainOptions):
    """Options of ``fwi pretrain``: a foundation model on a mixture of dataset families."""

    epochs: int = option(10, "passes over the training data (of samples_per_epoch samples each)")
    batch_size: int = option(16, "samples per optimisation step (per process under torchrun)")
    lr: float = option(1e-3, "peak learning rate of AdamW")
    weights: tuple[float, ...] = option((), "sampling weight of each dataset, in --dataset order "
                                            "(empty = proportional to dataset size)")
    samples_per_epoch: int = option(0, "training samples drawn per epoch (0 = the mixture's total size)")
    name: str = option("foundation", "name written into the weights' metadata and the model card")
    cache_dir: str = option("", "simulation cache folder ('' = the dataset's default cache)")
    init: str = option("", "weights to start from: a shipped name of the backbone or a .safetensors path "
                           "('' = random initialisation); their normalisation is kept, so training "
                           "continues on the scale the weights learned")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels == "self":
            raise ValueError("option 'labels' is 'self', which only fwi run offers; pretraining uses "
                             "'full' (or 'none')")
        if self.samples_per_epoch < 0:
            raise ValueError(f"option 'samples_per_epoch' must be >= 0, got {self.samples_per_epoch!r}")
        for i, w in enumerate(self.weights):
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"option 'weights'[{i}] must be a finite number >= 0, got {w!r}")
        if self.weights and sum(self.weights) <= 0:
            raise ValueError("option 'weights' must not be all zero")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ValueError(f"option {name!r} must be positive, got {value!r}")


def _finite_non_negative(obj: Any, *names: str, optional: bool = False) -> None:
    """Each option a finite number >= 0; with ``optional``, ``None`` (the component's own default) too."""
    for name in names:
        value = getattr(obj, name)
        if optional and value is None:
            continue
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"option {name!r} must be a finite number >= 0, got {value!r}")


def options_help(cls: type) -> str:
    """The options of ``cls`` as a plain-text list (for ``--help`` epilogs)."""
    lines = []
    for info in _options.describe(cls):
        default = info.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default)) or "(empty)"
        lines.append(f"  {info.name:<18} {default!s:<9} {info.help}")
    return "\n".join(lines)

