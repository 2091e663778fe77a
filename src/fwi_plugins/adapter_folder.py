"""Adapter folders on disk: the layout, and the rules every format's reader keeps.

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors``; as in
peft, the adapter named ``default`` goes at the top and any other named adapter in a
subfolder of its name. peft methods write peft's own layout (loadable with
``PeftModel.from_pretrained``); other formats write the same two files with
``"format": "fwi-plugins"`` and ``"fwi_method": NAME`` in the JSON, ``NAME`` being the
PEFT method whose loader reads them back.

The rules, kept here so that no format can skip them: weights are read only from local
safetensors files (a pickled weights file is refused, never unpickled), every tensor
read must be finite, and peft is imported with the Hugging Face Hub switched off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import DataError, FWIError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "fwi-plugins"
DEFAULT = "default"


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
        setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010 - a module attribute unknown to type checkers
    import peft

    return peft


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    """``folder``'s ``adapter_config.json`` as a dict; a missing or malformed file is an error."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FWIError(f"{folder} holds no saved adapter: {CONFIG_NAME} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise DataError(f"{path}: expected a JSON object of adapter settings, found a {type(config).__name__}")
    return config


def named_adapter_folders(directory: str | Path) -> list[Path]:
    """The subfolders of ``directory`` that hold a named adapter, in name order."""
    return sorted(p for p in Path(directory).iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())


def check_weights_file(folder: str | Path) -> Path:
    """``folder``'s safetensors weights; a pickled or missing weights file is refused here.

    Checked before any library sees the folder: peft would unpickle ``adapter_model.bin``
    with ``torch.load`` and look a folder without weights up on the Hugging Face Hub.
    """
    from .weights import _PICKLE_SUFFIXES

    folder = Path(folder)
    path = folder / WEIGHTS_NAME
    if path.is_file():
        return path
    pickled = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _PICKLE_SUFFIXES)
    if pickled:
        raise DataError(f"{folder / pickled[0]}: pickled adapter weights are not loaded (they can run code); "
                        f"expected {WEIGHTS_NAME} (peft: model.save_pretrained(folder, safe_serialization=True))")
    raise DataError(f"{folder} holds no {WEIGHTS_NAME}: an adapter is loaded only from a local safetensors file")


def _is_own_format(config: Mapping[str, Any]) -> bool:
    return config.get("format") == FORMAT


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
    config = read_adapter_config(directory)
    check_weights_file(directory)
    top = str(config.get("adapter_name", DEFAULT)) if _is_own_format(config) else DEFAULT
    entries = [(top, directory, config)]
    for sub in named_adapter_folders(directory):
        entries.append((sub.name, sub, read_adapter_config(sub)))
        check_weights_file(sub)
    return entries


def read_adapter_weights(folder: str | Path, device: Any = "cpu") -> dict[str, Any]:
    """The tensors of ``folder``'s safetensors weights, on ``device``, checked finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .weights import check_finite

    path = check_weights_file(folder)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    check_finite(tensors, source=str(path))
    return tensors


def write_adapter(folder: str | Path, *, method: str, config: Mapping[str, Any],
                  tensors: Mapping[str, Any]) -> Path:
    """Write one adapter in the fwi-plugins format: settings and safetensors weights.

    Meant for a PEFT method's saver, which writes into the fresh folder it is handed (the
    caller moves that folder into place whole).

    Args:
        folder: where the two files go (made if missing).
        method: the PEFT method's registered name; its loader reads the folder back.
        config: the method's own settings (plain JSON data).
        tensors: name -> tensor; copied to CPU, contiguous and apart.

    Returns:
        ``folder``.
    """
    from safetensors.torch import save_file

    from .weights import plain_tensors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"format": FORMAT, "fwi_method": method, "adapter_name": DEFAULT, **config}
    (folder / CONFIG_NAME).write_text(json.dumps(settings, indent=2) + "\n")
    save_file(plain_tensors(tensors), str(folder / WEIGHTS_NAME), metadata={"format": FORMAT, "method": method})
    return folder
