"""Adapted models: parameter counts, saving and loading adapters, several adapters on one backbone.

Works on both kinds of adapted model the PEFT plugins return: peft's ``PeftModel``
(``lora``, ``ia3``, ``loha``, ``lokr``) and
:class:`~fwi_plugins.builtins.adapter.AdaptedModel` (``adapter``, ``full``, ``frozen``).

On disk an adapter is a directory holding ``adapter_config.json`` and
``adapter_model.safetensors``: peft's own layout for peft methods, so the adapter can
be shared and loaded with ``PeftModel.from_pretrained``; the same two files for the
others, with ``"format": "fwi-plugins"`` in the JSON. As in peft, the adapter named
``default`` goes at the top and any other named adapter in a subdirectory of its name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, FWIError, OptionError
from .io_utils import PART_SUFFIX, respect_umask

if TYPE_CHECKING:
    from torch import nn

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "fwi-plugins"
DEFAULT = "default"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a parameter shared by two modules counts once."""
    trainable = total = 0
    for p in model.parameters():  # parameters() already yields each tensor once
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def is_peft_model(model: Any) -> bool:
    """Whether ``model`` is a peft ``PeftModel`` (checked without importing peft)."""
    return hasattr(model, "peft_config") and hasattr(model, "base_model") and hasattr(model, "active_adapter")


def _is_own(model: Any) -> bool:
    from .builtins.adapter import AdaptedModel

    return isinstance(model, AdaptedModel)


def _own(model: Any) -> Any:
    from .builtins.adapter import AdaptedModel

    if not isinstance(model, AdaptedModel):
        raise OptionError(f"{type(model).__name__} was not adapted by a PEFT method (apply one with "
                          "fwi_plugins.api.apply_peft first)")
    return model


def supports_adapters(model: nn.Module) -> bool:
    """Whether ``model`` can hold several named adapters (peft methods and ``adapter``)."""
    return is_peft_model(model) or (_is_own(model) and model.method == "adapter")


def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapters the model holds."""
    if is_peft_model(model):
        return list(model.peft_config)
    return _own(model).adapter_names


def active_adapter(model: nn.Module) -> str | None:
    """The adapter used in forward (and trained)."""
    if is_peft_model(model):
        return model.active_adapter
    return _own(model).active_adapter


def add_adapter(model: nn.Module, name: str) -> None:
    """Add a fresh adapter ``name``, configured like the active one; it is not activated.

    The backbone stays frozen and shared: only the new adapter's own weights are added.
    """
    if is_peft_model(model):
        import copy

        if name in model.peft_config:
            raise OptionError(f"adapter {name!r} exists already (have: {', '.join(model.peft_config)})")
        model.add_adapter(name, copy.deepcopy(model.peft_config[model.active_adapter]))
        from .builtins.adapter import freeze_statistics

        freeze_statistics(model)
        return
    _own(model).add_adapter(name)


def set_adapter(model: nn.Module, name: str) -> None:
    """Switch forward (and training) to adapter ``name``."""
    if is_peft_model(model):
        if name not in model.peft_config:
            raise OptionError(f"no adapter {name!r} (have: {', '.join(model.peft_config)})")
        model.set_adapter(name)
        return
    _own(model).set_adapter(name)


def merge_and_unload(model: nn.Module) -> nn.Module:
    """The backbone with the active adapter merged into it, without adapter machinery.

    For peft methods the update is folded into the weights (no extra inference cost);
    bottleneck adapters, being non-linear, stay as modules after their blocks.
    """
    if is_peft_model(model):
        _unwrap_saved_modules(model)
        return model.merge_and_unload()
    return _own(model).merge_and_unload()


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


# -- save / load ----------------------------------------------------------------
def _replace_into(tmp: Path, directory: Path) -> None:
    """Move what ``tmp`` holds into ``directory``, file by file atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in tmp.iterdir():
        target = directory / entry.name
        if entry.is_dir():
            if target.exists():
                shutil.rmtree(target)
            os.replace(entry, target)
        else:
            os.replace(entry, target)


def save_adapted(model: nn.Module, directory: str | Path) -> Path:
    """Save what the PEFT method trained (every named adapter) to ``directory``.

    Args:
        model: an adapted model, as a PEFT method's factory returned it.
        directory: where ``adapter_config.json`` and ``adapter_model.safetensors`` go.

    Returns:
        ``directory``.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=PART_SUFFIX, dir=directory.parent))
    try:
        if is_peft_model(model):
            model.save_pretrained(str(tmp), safe_serialization=True)
        elif _is_own(model):
            _save_own(model, tmp)
        else:
            _save_generic(model, tmp)
        respect_umask(tmp)
        _replace_into(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _save_own(model: Any, directory: Path) -> None:
    from safetensors.torch import save_file

    from .weights import _tensors

    names = model.adapter_names or [DEFAULT]
    if DEFAULT in names:  # peft's convention: "default" at the top, the others in subdirectories
        names.remove(DEFAULT)
        names.insert(0, DEFAULT)
    for name in names:
        where = directory if name == names[0] else directory / name
        where.mkdir(parents=True, exist_ok=True)
        config = {"format": FORMAT, "fwi_method": model.method, "adapter_name": name,
                  "options": model.options, "points": list(model.points), "head": list(model.head)}
        (where / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        state = model.adapter_state(name)
        holder = _StateHolder(state)
        save_file(_tensors(holder), str(where / WEIGHTS_NAME), metadata={"format": FORMAT, "method": model.method})


def _save_generic(model: nn.Module, directory: Path) -> None:
    """A method that only chooses which weights train: save those, and every buffer.

    Buffers are included because normalisation statistics change while training even
    where their layer's weights are frozen.
    """
    from safetensors.torch import save_file

    from .weights import _tensors

    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    if not trained:
        raise OptionError(f"{type(model).__name__} has no trainable parameter: nothing to save")
    keep = set(trained) | {n for n, _ in model.named_buffers()}
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    config = {"format": FORMAT, "fwi_method": "trainable", "adapter_name": DEFAULT, "trainable": trained}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    save_file(_tensors(_StateHolder(state)), str(directory / WEIGHTS_NAME),
              metadata={"format": FORMAT, "method": "trainable"})


class _StateHolder:
    """Duck-typed stand-in with a ``state_dict()``, so :func:`weights._tensors` can prepare it."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


def import_peft() -> Any:
    """Import peft with the Hugging Face Hub switched off.

    peft (through ``huggingface_hub``) resolves any name it cannot find locally as a Hub
    repository id; nothing here should ever reach the network, so offline mode is set
    before the import (and on ``huggingface_hub`` itself, should it be imported already).
    """
    import sys

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    import peft

    return peft


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise FWIError(f"{directory} holds no saved adapter: {CONFIG_NAME} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise DataError(f"{path}: expected a JSON object of adapter settings, found a {type(config).__name__}")
    return config


def _named_subdirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())


def _check_weights_file(folder: Path) -> Path:
    """``folder``'s safetensors weights; a pickled or missing weights file is refused here.

    Checked before any library sees the folder: peft would unpickle ``adapter_model.bin``
    with ``torch.load`` and look a folder without weights up on the Hugging Face Hub.
    """
    from .weights import _PICKLE_SUFFIXES

    path = folder / WEIGHTS_NAME
    if path.is_file():
        return path
    pickled = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _PICKLE_SUFFIXES)
    if pickled:
        raise DataError(f"{folder / pickled[0]}: pickled adapter weights are not loaded (they can run code); "
                        f"expected {WEIGHTS_NAME} (peft: model.save_pretrained(folder, safe_serialization=True))")
    raise DataError(f"{folder} holds no {WEIGHTS_NAME}: an adapter is loaded only from a local safetensors file")


def check_adapter_folder(directory: str | Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """The adapters saved in ``directory``, checked without loading any weights.

    Returns:
        ``(name, folder, settings)`` per adapter, the top-level one first.

    Raises:
        FWIError: not a folder, or a settings file or weights file that is missing,
            malformed or pickled.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is not a folder" if directory.exists() else "does not exist"
        raise DataError(f"adapter directory {directory} {what} (expected a folder with {CONFIG_NAME} and "
                        f"{WEIGHTS_NAME})")
    config = _read_config(directory)
    _check_weights_file(directory)
    entries = [(str(config.get("adapter_name", DEFAULT)) if config.get("format") == FORMAT else DEFAULT,
                directory, config)]
    if not (config.get("format") == FORMAT and config.get("fwi_method") != "adapter"):
        for sub in _named_subdirs(directory):
            entries.append((sub.name, sub, _read_config(sub)))
            _check_weights_file(sub)
    return entries


def _read_weights(path: Path, device: Any) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .weights import check_finite

    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    check_finite(tensors, source=str(path))
    return tensors


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
    if config.get("format") == FORMAT:
        if config.get("fwi_method") == "trainable":
            return _load_generic(model, directory, config, trainable=trainable)
        adapted = _load_own(model, directory, config)
        if not trainable:
            adapted.requires_grad_(False)
        return adapted
    return _load_peft(model, entries, trainable=trainable)


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

    from .builtins.adapter import freeze_statistics

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
        state = _read_weights(path, device)
        try:
            result = set_peft_model_state_dict(adapted, state, adapter_name=name)
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


def _load_generic(model: nn.Module, directory: Path, config: dict[str, Any], *, trainable: bool) -> nn.Module:
    path = _check_weights_file(directory)
    state = _read_weights(path, next(model.parameters()).device)
    own = model.state_dict()
    wrong = [k for k in state if k not in own or tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise DataError(f"{path} does not fit {type(model).__name__} (built with other options or shape?): "
                        f"{', '.join(wrong[:5])}")
    model.load_state_dict(state, strict=False)
    names = set(config.get("trainable", ()))
    for name, p in model.named_parameters():
        p.requires_grad_(trainable and name in names)
    return model


def _load_own(model: nn.Module, directory: Path, config: dict[str, Any]) -> Any:
    from .builtins.adapter import AdaptedModel
    from .weights import check_state

    method = config.get("fwi_method")
    if method not in ("adapter", "full", "frozen"):
        raise DataError(f"{directory / CONFIG_NAME}: unknown method {method!r}")
    try:
        adapted = AdaptedModel(model, method=method, head=config.get("head", ()), options=config.get("options"),
                               points=config.get("points", ()))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise DataError(f"{directory / CONFIG_NAME}: settings that do not fit {type(model).__name__} "
                        f"({exc})") from exc
    device = next(model.parameters()).device
    entries = [(config.get("adapter_name", DEFAULT), directory)]
    entries += [(sub.name, sub) for sub in _named_subdirs(directory)] if method == "adapter" else []
    for name, where in entries:
        path = _check_weights_file(where)
        state = _read_weights(path, device)
        if method == "adapter":
            adapted.add_adapter(name)
            expected = adapted.adapter_state(name)
        else:
            expected = adapted.adapter_state(DEFAULT)
        holder = _StateHolder(expected)
        check_state(holder, state, source=str(path),  # type: ignore[arg-type]
                    target=f"{method} on {type(model).__name__}")
        adapted.load_adapter_state(name, state)
    if method == "adapter":
        adapted.set_adapter(entries[0][0])
    return adapted
