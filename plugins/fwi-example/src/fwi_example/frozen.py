"""The ``frozen-encoder`` PEFT method: keep the encoder, retrain the decoder.

A classic transfer-learning baseline for encoder-decoder inversion networks: the encoder
has learned to read gathers, the decoder maps what it read to a new geology. Nothing is
added to the network; parameters are frozen in place, so the adapted model keeps the
backbone's own state-dict keys and loads like the backbone.

Which modules form the encoder:

* with the ``prefixes`` option, the modules with those names and everything under them
  (``prefixes=encoder,bottleneck`` on ``tinyunet``);
* otherwise the first ``fraction`` (default half, rounded up) of the network's top-level
  modules that are not in its head, in registration order. Encoder-decoder networks
  register their layers in data-flow order, so this is the encoder side; on ``tinyunet``
  it is ``encoder`` and ``bottleneck``. When the network has a single non-head top-level
  module (a wrapper), its children are counted instead.

The head always stays trainable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from fwi_plugins.errors import OptionError

from .options import FrozenEncoderOptions


def _in_any(name: str, roots: Sequence[str]) -> bool:
    """True when module ``name`` is one of ``roots`` or lies under one of them."""
    return any(name == r or name.startswith(r + ".") for r in roots)


def encoder_modules(model: nn.Module, *, head: Sequence[str] = (), fraction: float = 0.5) -> list[str]:
    """Names of the modules the default rule counts as the encoder (see the module docstring)."""
    parent, prefix = model, ""
    while True:
        units = [(prefix + name, child) for name, child in parent.named_children()
                 if not _in_any(prefix + name, head)]
        if len(units) != 1 or not any(True for _ in units[0][1].children()):
            break
        parent, prefix = units[0][1], units[0][0] + "."
    # Modules without parameters (activations, pooling) carry nothing to freeze, and
    # counting them would shift the split point.
    units = [(name, child) for name, child in units if any(True for _ in child.parameters())]
    n_frozen = math.ceil(fraction * len(units))
    return [name for name, _ in units[:n_frozen]]


def apply(model: nn.Module, options: FrozenEncoderOptions | None, *, targets: tuple[str, ...] = (),
          head: tuple[str, ...] = ()) -> nn.Module:
    """Factory of the ``frozen-encoder`` method (see :class:`~fwi_plugins.PeftMethodSpec`).

    Args:
        model: the backbone network; modified in place and returned.
        options: which modules form the encoder.
        targets: the backbone's PEFT targets; unused, the method works on whole modules.
        head: the backbone's head modules; never frozen.

    Returns:
        ``model``, with the encoder's parameters frozen and every other one trainable.

    Raises:
        OptionError: a prefix names no module, or the rule would freeze every parameter.
    """
    options = options or FrozenEncoderOptions()
    names = dict(model.named_modules())
    if options.prefixes:
        unknown = [p for p in options.prefixes if p not in names]
        if unknown:
            top = ", ".join(n for n, _ in model.named_children())
            raise OptionError(f"frozen-encoder: prefixes {', '.join(map(repr, unknown))} name no module "
                              f"of the network (its top-level modules: {top})")
        frozen_roots = [p for p in options.prefixes if not _in_any(p, head)]
    else:
        frozen_roots = encoder_modules(model, head=head, fraction=options.fraction)

    for name, param in model.named_parameters():
        module_name = name.rpartition(".")[0]
        param.requires_grad_(not _in_any(module_name, frozen_roots) or _in_any(module_name, head))
    if not any(p.requires_grad for p in model.parameters()):
        raise OptionError(f"frozen-encoder: freezing {', '.join(frozen_roots)} leaves nothing to train; "
                          f"lower `fraction` or name fewer prefixes")

    # A frozen batch-norm layer would still update its running statistics in training mode,
    # silently changing the "frozen" encoder; run those layers in inference mode instead.
    for name, module in names.items():
        if _in_any(name, frozen_roots) and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_inference_mode_pre_hook)
    return model


def _inference_mode_pre_hook(module: nn.Module, args: tuple) -> None:
    module.eval()
