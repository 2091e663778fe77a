"""Option dataclasses of the built-in PEFT methods (light: no torch, no peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

_TARGETS_HELP = ("module-name patterns to adapt (peft's target_modules: name suffixes, or one "
                 "regular expression); empty: the backbone's own")
_HEAD_HELP = "also train the backbone's output head in full (peft's modules_to_save)"


def _positive(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(obj, name)}")


def _probability(obj: object, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(obj, name) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(obj, name)}")


@dataclass(frozen=True, kw_only=True)
class LoraOptions:
    """Options of ``lora`` (low-rank updates of linear and convolution weights)."""

    r: int = option(4, "rank of the low-rank update (4 keeps vit tiny under 1% trainable)")
    alpha: float = option(8.0, "scaling numerator: the update is scaled by alpha / r")
    dropout: float = option(0.0, "dropout on the input of the low-rank path")
    rslora: bool = option(False, "scale by alpha / sqrt(r) (rank-stabilised LoRA)")
    targets: tuple[str, ...] = option((), _TARGETS_HELP)
    train_head: bool = option(True, _HEAD_HELP)

    def __post_init__(self) -> None:
        _positive(self, "r", "alpha")
        _probability(self, "dropout")


@dataclass(frozen=True, kw_only=True)
class IA3Options:
    """Options of ``ia3`` (learned rescaling of activations)."""

    targets: tuple[str, ...] = option((), _TARGETS_HELP)
    feedforward: tuple[str, ...] = option(
        ("fc2",), "targets whose input (not output) is rescaled, as IA3 does for feed-forward layers; "
                  "names that match no target are ignored")
    train_head: bool = option(True, _HEAD_HELP)


@dataclass(frozen=True, kw_only=True)
class LoHaOptions:
    """Options of ``loha`` (low-rank Hadamard product updates)."""

    r: int = option(8, "rank of each of the two factors")
    alpha: float = option(8.0, "scaling numerator: the update is scaled by alpha / r")
    rank_dropout: float = option(0.0, "dropout of whole ranks during training")
    module_dropout: float = option(0.0, "probability of skipping a layer's update during training")
    targets: tuple[str, ...] = option((), _TARGETS_HELP)
    train_head: bool = option(True, _HEAD_HELP)

    def __post_init__(self) -> None:
        _positive(self, "r", "alpha")
        _probability(self, "rank_dropout", "module_dropout")


@dataclass(frozen=True, kw_only=True)
class LoKrOptions(LoHaOptions):
    """Options of ``lokr`` (low-rank Kronecker product updates): LoHa's, plus the split."""

    r: int = option(8, "rank of the larger Kronecker factor")
    decompose_factor: int = option(-1, "factor size of the Kronecker split; -1 picks the most square")


@dataclass(frozen=True, kw_only=True)
class AdapterOptions:
    """Options of ``adapter`` (bottleneck adapters after the backbone's blocks)."""

    reduction: int = option(8, "bottleneck width is the block's width divided by this")
    bottleneck: int = option(0, "fixed bottleneck width; 0: width / reduction (at least 4)")
    targets: tuple[str, ...] = option(
        (), "modules after which adapters are inserted (patterns as for lora); empty: the network's "
            "adapter_targets attribute if it has one, else the backbone's PEFT targets")
    train_head: bool = option(True, _HEAD_HELP)

    def __post_init__(self) -> None:
        _positive(self, "reduction")
        if self.bottleneck < 0:
            raise ValueError(f"bottleneck must be 0 or positive, got {self.bottleneck}")
