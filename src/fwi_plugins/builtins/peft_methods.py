"""Factories of the built-in PEFT methods.

``lora``, ``ia3``, ``loha`` and ``lokr`` are Hugging Face peft's own tuners, applied to
the plain ``nn.Module`` backbone; ``adapter``, ``full`` and ``frozen`` are
:class:`~fwi_plugins.builtins.adapted_model.AdaptedModel`. Every factory has the signature
``apply(model, options, *, targets, head) -> nn.Module`` and leaves exactly the
parameters the method trains with ``requires_grad``.

peft is imported inside the factories (importing it costs seconds), offline: see
:func:`~fwi_plugins.adapter_folder.import_peft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..errors import OptionError
from ..options import to_dict
from ..adapter_folder import import_peft
from ..adapted import freeze_statistics
from .adapted_model import AdaptedModel
from .targets import as_peft_targets, matches, select
from .peft_options import AdapterOptions, IA3Options, LoHaOptions, LoKrOptions, LoraOptions


def _targets(method: str, chosen: Sequence[str], default: Sequence[str]) -> tuple[str, ...]:
    targets = tuple(chosen) or tuple(default)
    if not targets:
        raise OptionError(f"{method}: no target modules: the backbone declares none; pass targets=...")
    return targets


def _with_peft(model: nn.Module, config: Any, method: str, targets: tuple[str, ...]) -> nn.Module:
    import_peft()
    from peft import get_peft_model

    select(model, as_peft_targets(targets), what=method)  # a clear error before peft's own
    try:
        adapted = get_peft_model(model, config)
    except ValueError as exc:  # peft's message for an unsupported layer type, for example
        raise OptionError(f"{method}: {exc}") from exc
    freeze_statistics(adapted)
    return adapted


def _save(head: Sequence[str], train_head: bool) -> list[str] | None:
    return list(head) if train_head and head else None


def apply_lora(model: nn.Module, options: LoraOptions | None = None, *, targets: Sequence[str] = (),
               head: Sequence[str] = ()) -> nn.Module:
    """LoRA (Hu et al. 2021) through peft: ``W + (alpha / r) B A`` on linear and conv layers."""
    import_peft()
    from peft import LoraConfig

    o = options or LoraOptions()
    chosen = _targets("lora", o.targets, targets)
    config = LoraConfig(r=o.r, lora_alpha=o.alpha, lora_dropout=o.dropout, use_rslora=o.rslora,
                        target_modules=as_peft_targets(chosen), modules_to_save=_save(head, o.train_head))
    return _with_peft(model, config, "lora", chosen)


def apply_ia3(model: nn.Module, options: IA3Options | None = None, *, targets: Sequence[str] = (),
              head: Sequence[str] = ()) -> nn.Module:
    """IA3 (Liu et al. 2022) through peft: learned per-channel scales of activations."""
    import_peft()
    from peft import IA3Config

    o = options or IA3Options()
    chosen = _targets("ia3", o.targets, targets)
    peft_targets = as_peft_targets(chosen)
    selected = select(model, peft_targets, what="ia3")
    # peft insists that feed-forward modules be among the targets: keep the ones that are.
    feedforward = [f for f in o.feedforward if any(matches(n, (f,)) for n in selected)]
    config = IA3Config(target_modules=peft_targets, feedforward_modules=feedforward,
                       modules_to_save=_save(head, o.train_head))
    return _with_peft(model, config, "ia3", chosen)


def apply_loha(model: nn.Module, options: LoHaOptions | None = None, *, targets: Sequence[str] = (),
               head: Sequence[str] = ()) -> nn.Module:
    """LoHa (Hyeon-Woo et al. 2022) through peft: Hadamard product of two low-rank updates."""
    import_peft()
    from peft import LoHaConfig

    o = options or LoHaOptions()
    chosen = _targets("loha", o.targets, targets)
    config = LoHaConfig(r=o.r, alpha=o.alpha, rank_dropout=o.rank_dropout, module_dropout=o.module_dropout,
                        target_modules=as_peft_targets(chosen), modules_to_save=_save(head, o.train_head))
    return _with_peft(model, config, "loha", chosen)


def apply_lokr(model: nn.Module, options: LoKrOptions | None = None, *, targets: Sequence[str] = (),
               head: Sequence[str] = ()) -> nn.Module:
    """LoKr (Yeh et al. 2023) through peft: Kronecker product with a low-rank factor."""
    import_peft()
    from peft import LoKrConfig

    o = options or LoKrOptions()
    chosen = _targets("lokr", o.targets, targets)
    config = LoKrConfig(r=o.r, alpha=o.alpha, decompose_factor=o.decompose_factor, rank_dropout=o.rank_dropout,
                        module_dropout=o.module_dropout, target_modules=as_peft_targets(chosen),
                        modules_to_save=_save(head, o.train_head))
    return _with_peft(model, config, "lokr", chosen)


def apply_adapter(model: nn.Module, options: AdapterOptions | None = None, *, targets: Sequence[str] = (),
                  head: Sequence[str] = (), adapter_name: str = "default") -> AdaptedModel:
    """Bottleneck adapters (Houlsby et al. 2019) after the backbone's blocks.

    Where they go: ``options.targets`` if given, else the network's ``adapter_targets``
    attribute (the built-in backbones name their blocks there), else ``targets``.
    """
    o = options or AdapterOptions()
    chosen = _targets("adapter", o.targets, tuple(getattr(model, "adapter_targets", ()) or ()) or targets)
    points = select(model, as_peft_targets(chosen), what="adapter")
    # A point inside another point would adapt the same features twice.
    points = [p for p in points if not any(p.startswith(q + ".") for q in points)]
    adapted = AdaptedModel(model, method="adapter", head=head, points=points,
                           options={**to_dict(o), "targets": list(chosen)})
    adapted.add_adapter(adapter_name)
    return adapted


def apply_full(model: nn.Module, options: None = None, *, targets: Sequence[str] = (),
               head: Sequence[str] = ()) -> AdaptedModel:
    """Full fine-tuning: every parameter trains."""
    return AdaptedModel(model, method="full", head=head)


def apply_frozen(model: nn.Module, options: None = None, *, targets: Sequence[str] = (),
                 head: Sequence[str] = ()) -> AdaptedModel:
    """Frozen backbone: only the output head trains."""
    return AdaptedModel(model, method="frozen", head=head)
