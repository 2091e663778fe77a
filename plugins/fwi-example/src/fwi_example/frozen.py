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

Saved in a format of its own (the method's ``saver`` and ``loader``): which modules were
frozen, and the weights that trained plus every buffer; loading freezes the same modules
of a freshly built backbone again, so the loaded model behaves as the trained one did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from fwi_plugins.adapter_folder import read_adapter_config, read_adapter_weights, write_adapter
from fwi_plugins.errors import DataError, OptionError

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

    return _freeze(model, frozen_roots, head)


#: Where a model adapted by ``frozen-encoder`` records what it froze (read by :func:`save`).
_RECORD = "fwi_frozen_encoder"


def _freeze(model: nn.Module, frozen_roots: Sequence[str], head: Sequence[str]) -> nn.Module:
    for name, param in model.named_parameters():
        module_name = name.rpartition(".")[0]
        param.requires_grad_(not _in_any(module_name, frozen_roots) or _in_any(module_name, head))
    if not any(p.requires_grad for p in model.parameters()):
        raise OptionError(f"frozen-encoder: freezing {', '.join(frozen_roots)} leaves nothing to train; "
                          f"lower `fraction` or name fewer prefixes")

    # A frozen batch-norm layer would still update its running statistics in training mode,
    # silently changing the "frozen" encoder; run those layers in inference mode instead.
    for name, module in model.named_modules():
        if _in_any(name, frozen_roots) and isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_inference_mode_pre_hook)
    setattr(model, _RECORD, {"frozen": list(frozen_roots), "head": list(head)})
    return model


def save(model: nn.Module, folder: Path) -> None:
    """Saver of ``frozen-encoder``: what was frozen, the trained weights and every buffer."""
    record = getattr(model, _RECORD, None)
    if record is None:
        raise OptionError(f"{type(model).__name__} was not adapted by frozen-encoder")
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    keep = set(trained) | {n for n, _ in model.named_buffers()}
    tensors = {k: v for k, v in model.state_dict().items() if k in keep}
    write_adapter(folder, method="frozen-encoder", config={**record, "trainable": trained}, tensors=tensors)


def load(model: nn.Module, folder: Path, *, trainable: bool) -> nn.Module:
    """Loader of ``frozen-encoder``: freeze the saved modules of ``model`` again, then load the weights."""
    config = read_adapter_config(folder)
    frozen, head = config.get("frozen"), config.get("head", [])
    names = dict(model.named_modules())
    if not isinstance(frozen, list) or not all(isinstance(n, str) and n in names for n in frozen):
        raise DataError(f"{folder}: frozen modules {frozen!r} do not fit {type(model).__name__}")
    state = read_adapter_weights(folder, next(model.parameters()).device)
    own = model.state_dict()
    wrong = [k for k in state if k not in own or tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise DataError(f"{folder} does not fit {type(model).__name__} (built with other options or shape?): "
                        f"{', '.join(wrong[:5])}")
    model.load_state_dict(state, strict=False)
    _freeze(model, frozen, head)
    if not trainable:
        model.requires_grad_(False)
    return model


def _inference_mode_pre_hook(module: nn.Module, args: tuple) -> None:
    module.eval()
