"""Adapted models: parameter counts, several adapters on one backbone, saving and loading.

Works on any model a PEFT method's factory returned. Models that hold named adapters
offer peft's ``PeftModel`` interface (``peft_config`` aside): ``adapter_names``,
``active_adapter``, ``add_adapter(name)``, ``set_adapter(name)`` and
``merge_and_unload()``; peft's own models are handled through peft.

Saving is the method's own (see :class:`~fwi_plugins.specs.PeftMethodSpec`): the method
that adapted a model is named on it by :meth:`PeftMethodSpec.apply
<fwi_plugins.specs.PeftMethodSpec.apply>` (or passed to :func:`save_adapted`), and its
saver writes the folder; reading a folder back, its settings name the loader. Two
formats need no method: peft's own layout, and the trained parameters with every
buffer. The folder layout and the rules every reader keeps are in
:mod:`fwi_plugins.adapter_folder`.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from .adapter_folder import (CONFIG_NAME, FORMAT, WEIGHTS_NAME, check_adapter_folder, import_peft,
                             read_adapter_weights, write_adapter)
from .errors import DataError, FWIError, OptionError, UnknownNameError
from .atomic import PART_SUFFIX, respect_umask
from .specs import METHOD_ATTRIBUTE, PeftMethodSpec

if TYPE_CHECKING:
    from torch import nn

#: ``fwi_method`` of the generic format: the trained parameters and every buffer.
TRAINABLE_FORMAT = "trainable"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a parameter shared by two modules counts once."""
    trainable = total = 0
    for p in model.parameters():  # parameters() already yields each tensor once
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def is_peft_model(model: Any) -> TypeGuard[Any]:
    """Whether ``model`` is a peft ``PeftModel`` (checked without importing peft, so typed loosely)."""
    return hasattr(model, "peft_config") and hasattr(model, "base_model") and hasattr(model, "active_adapter")


def freeze_statistics(model: nn.Module) -> None:
    """Stop running statistics of frozen normalisation layers from drifting while training.

    A frozen backbone is frozen in full: with ``momentum=0`` a BatchNorm whose parameters
    do not train keeps its pretrained running mean and variance, so a saved adapter
    reproduces its outputs on a freshly built backbone.
    """
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.__dict__.setdefault("trained_momentum", module.momentum)
                module.momentum = 0.0


def thaw_statistics(model: nn.Module) -> None:
    """Undo :func:`freeze_statistics` (for a trainable copy of a frozen module)."""
    for module in model.modules():
        if "trained_momentum" in module.__dict__:
            module.momentum = module.__dict__.pop("trained_momentum")


# -- several adapters on one backbone ----------------------------------------------------
def _holder(model: Any) -> Any:
    """``model`` if it offers the named-adapter interface; an :class:`OptionError` otherwise."""
    if not all(hasattr(model, a) for a in ("adapter_names", "add_adapter", "set_adapter", "merge_and_unload")):
        raise OptionError(f"{type(model).__name__} was not adapted by a PEFT method that holds named adapters "
                          "(apply one with fwi_plugins.api.apply_peft first)")
    return model


def supports_adapters(model: nn.Module) -> bool:
    """Whether ``model`` can hold several named adapters (peft methods and ``adapter``)."""
    return is_peft_model(model) or bool(getattr(model, "adapter_names", None))


def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapters the model holds."""
    if is_peft_model(model):
        return list(model.peft_config)
    return list(_holder(model).adapter_names)


def active_adapter(model: nn.Module) -> str | None:
    """The adapter used in forward (and trained)."""
    if is_peft_model(model):
        return model.active_adapter
    return _holder(model).active_adapter


def add_adapter(model: nn.Module, name: str) -> None:
    """Add a fresh adapter ``name``, configured like the active one; it is not activated.

    The backbone stays frozen and shared: only the new adapter's own weights are added.
    """
    if is_peft_model(model):
        if name in model.peft_config:
            raise OptionError(f"adapter {name!r} exists already (have: {', '.join(model.peft_config)})")
        model.add_adapter(name, copy.deepcopy(model.peft_config[model.active_adapter]))
        freeze_statistics(model)
        return
    _holder(model).add_adapter(name)


def set_adapter(model: nn.Module, name: str) -> None:
    """Switch forward (and training) to adapter ``name``."""
    if is_peft_model(model):
        if name not in model.peft_config:
            raise OptionError(f"no adapter {name!r} (have: {', '.join(model.peft_config)})")
        model.set_adapter(name)
        return
    _holder(model).set_adapter(name)


def merge_and_unload(model: nn.Module) -> nn.Module:
    """The backbone with the active adapter merged into it, without adapter machinery.

    For peft methods the update is folded into the weights (no extra inference cost);
    bottleneck adapters, being non-linear, stay as modules after their blocks.
    """
    if is_peft_model(model):
        _unwrap_saved_modules(model)
        return model.merge_and_unload()
    return _holder(model).merge_and_unload()


def _unwrap_saved_modules(model: Any) -> None:
    """Put the active copy of each ``modules_to_save`` module back in place of its wrapper.

    peft's IA3, LoHa and LoKr unloading assumes a wrapped module has a ``weight`` of its
    own, which fails for a head that is a container (a conv, a norm and an activation);
    unwrapping first is what peft's LoRA unloading does anyway.
    """
    from peft.utils import ModulesToSaveWrapper

    base = model.get_base_model()
    wrapped = [(n, m) for n, m in base.named_modules() if isinstance(m, ModulesToSaveWrapper)]
    for name, wrapper in wrapped:
        active = wrapper.active_adapters[0] if wrapper.active_adapters else None
        new = wrapper.modules_to_save[active] if active in wrapper.modules_to_save else wrapper.original_module
        parent_name, _, child = name.rpartition(".")
        setattr(base.get_submodule(parent_name) if parent_name else base, child, new)


# -- save -------------------------------------------------------------------------------
def _method_spec(name: str) -> PeftMethodSpec:
    from .manager import get_plugin_manager

    spec = get_plugin_manager().get("peft", name)
    assert isinstance(spec, PeftMethodSpec)
    return spec


def _replace_into(tmp: Path, directory: Path) -> None:
    """Move what ``tmp`` holds into ``directory``, entry by entry atomically."""
    from .atomic import replace_dir

    directory.mkdir(parents=True, exist_ok=True)
    for entry in tmp.iterdir():
        if entry.is_dir():
            replace_dir(entry, directory / entry.name)
        else:
            os.replace(entry, directory / entry.name)


def save_adapted(model: nn.Module, directory: str | Path, *, method: str | PeftMethodSpec | None = None) -> Path:
    """Save what the PEFT method trained (every named adapter) to ``directory``.

    Args:
        model: an adapted model, as a PEFT method's factory returned it.
        directory: where ``adapter_config.json`` and ``adapter_model.safetensors`` go.
        method: the PEFT method that adapted ``model`` (name or spec); default: the one
            named on the model by :meth:`PeftMethodSpec.apply`. Its saver writes the
            folder; without one, peft's layout or the generic format is written.

    Returns:
        ``directory``.
    """
    directory = Path(directory)
    if method is None:
        method = getattr(model, METHOD_ATTRIBUTE, None)
    spec = _method_spec(method) if isinstance(method, str) else method
    saver = spec.load_saver() if spec is not None else None
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=PART_SUFFIX, dir=directory.parent))
    try:
        if saver is not None:
            saver(model, tmp)
        elif is_peft_model(model):
            model.save_pretrained(str(tmp), safe_serialization=True)
        else:
            save_trainable(model, tmp)
        if not (tmp / CONFIG_NAME).is_file():
            raise FWIError(f"saving {type(model).__name__} wrote no {CONFIG_NAME}")
        respect_umask(tmp)
        _replace_into(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def save_trainable(model: nn.Module, folder: Path) -> None:
    """The generic format: the trained parameters, and every buffer.

    Buffers are included because normalisation statistics change while training even
    where their layer's weights are frozen.
    """
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    if not trained:
        raise OptionError(f"{type(model).__name__} has no trainable parameter: nothing to save")
    keep = set(trained) | {n for n, _ in model.named_buffers()}
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    write_adapter(folder, method=TRAINABLE_FORMAT, config={"trainable": trained}, tensors=state)


# -- load -------------------------------------------------------------------------------
def load_adapted(model: nn.Module, directory: str | Path, *, trainable: bool = False) -> nn.Module:
    """Rebuild an adapted model from :func:`save_adapted`'s directory onto a fresh backbone.

    Only local safetensors weights are read: a pickled weights file is refused and no
    path is ever looked up on the Hugging Face Hub.

    Args:
        model: the backbone, freshly built with the options and shape it was trained with
            (and its pretrained weights, if the adapter was trained on top of them).
        directory: the saved adapter.
        trainable: leave the adapter's weights trainable (to go on training); otherwise
            nothing trains (inference).

    Returns:
        The adapted model, holding every adapter found, the top-level one active.
    """
    directory = Path(directory)
    entries = check_adapter_folder(directory)
    config = entries[0][2]
    if config.get("format") != FORMAT:
        return _load_peft(model, entries, trainable=trainable)
    name = config.get("fwi_method")
    if name == TRAINABLE_FORMAT:
        return load_trainable(model, directory, trainable=trainable)
    loader = _loader_for(name, directory)
    adapted = loader(model, directory, trainable=trainable)
    if not trainable:
        adapted.requires_grad_(False)
    setattr(adapted, METHOD_ATTRIBUTE, name)
    return adapted


def _loader_for(name: Any, directory: Path) -> Any:
    where = directory / CONFIG_NAME
    if not isinstance(name, str):
        raise DataError(f"{where}: fwi_method {name!r} names no PEFT method")
    try:
        spec = _method_spec(name)
    except UnknownNameError as exc:
        raise DataError(f"{where}: unknown method {name!r}, saved by a PEFT method that is not installed "
                        f"({exc})") from exc
    loader = spec.load_loader()
    if loader is None:
        raise DataError(f"{where}: PEFT method {name!r} has no format of its own to load")
    return loader


def load_trainable(model: nn.Module, folder: Path, *, trainable: bool) -> nn.Module:
    """Read the generic format back: trained parameters and buffers into ``model``."""
    from .adapter_folder import read_adapter_config

    config = read_adapter_config(folder)
    state = read_adapter_weights(folder, next(model.parameters()).device)
    own = model.state_dict()
    wrong = [k for k in state if k not in own or tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise DataError(f"{folder / WEIGHTS_NAME} does not fit {type(model).__name__} (built with other options "
                        f"or shape?): {', '.join(wrong[:5])}")
    model.load_state_dict(state, strict=False)
    names = set(config.get("trainable", ()))
    for name, p in model.named_parameters():
        p.requires_grad_(trainable and name in names)
    return model


def _peft_config(folder: Path, settings: dict[str, Any], *, trainable: bool) -> Any:
    """peft's config object from ``adapter_config.json``'s settings, as peft itself reads them."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    where = folder / CONFIG_NAME
    kind = settings.get("peft_type")
    if kind not in PEFT_TYPE_TO_CONFIG_MAPPING:
        raise DataError(f"{where}: peft_type {kind!r} is not a peft method (known: "
                        f"{', '.join(sorted(map(str, PEFT_TYPE_TO_CONFIG_MAPPING)))})")
    settings = {k: v for k, v in settings.items() if k != "runtime_config"}
    cls = PEFT_TYPE_TO_CONFIG_MAPPING[kind]
    try:
        config = cls.from_peft_type(**cls.check_kwargs(**settings))
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"{where}: not a valid {kind} configuration ({exc})") from exc
    if config.is_prompt_learning:
        raise DataError(f"{where}: prompt-learning adapters ({kind}) do not apply to these backbones")
    config.inference_mode = not trainable
    return config


def _load_peft(model: nn.Module, entries: list[tuple[str, Path, dict[str, Any]]], *, trainable: bool) -> nn.Module:
    """peft's ``PeftModel.from_pretrained``, with configs and weights read here, never by peft."""
    import_peft()
    from peft import PeftModel, set_peft_model_state_dict

    configs = [(name, folder, _peft_config(folder, settings, trainable=trainable))
               for name, folder, settings in entries]
    device = next(model.parameters()).device
    name0, folder0, config0 = configs[0]
    try:
        adapted = PeftModel(model, config0, adapter_name=name0)
        for name, _, config in configs[1:]:
            adapted.add_adapter(name, config)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{folder0 / CONFIG_NAME}: the adapter does not fit {type(model).__name__} "
                        f"(built with other options or shape?): {exc}") from exc
    for name, folder, _ in configs:
        path = folder / WEIGHTS_NAME
        state = read_adapter_weights(folder, device)
        try:
            result: Any = set_peft_model_state_dict(adapted, state, adapter_name=name)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: the saved adapter does not fit {type(model).__name__} "
                            f"(built with other options or shape?): {exc}") from exc
        missing = [k for k in result.missing_keys if f".{name}." in k or k.endswith(f".{name}")]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(f"{path} does not fit {type(model).__name__} (built with other options or shape?): "
                            f"missing {', '.join(missing[:5])}{more}")
        if trainable:
            adapted.set_requires_grad(name)
    if not trainable:
        adapted.requires_grad_(False)
        adapted.eval()
    freeze_statistics(adapted)
    return adapted
