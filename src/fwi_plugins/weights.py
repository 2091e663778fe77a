"""Backbone weights as safetensors: save, and load by shipped name or by path.

Weights are never unpickled: ``torch.load`` on a file someone hands you can run code.
A checkpoint in another format is converted once, by its owner, to safetensors.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, FWIError, UnknownNameError
from .io_utils import atomic_path

if TYPE_CHECKING:
    from torch import nn

    from .specs import BackboneSpec

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")


def _tensors(model: nn.Module) -> dict[str, Any]:
    """The state dict, detached, contiguous, on CPU; tensors sharing storage are copied apart."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if t.numel() and key in seen:  # safetensors refuses shared memory
            t = t.clone()
        seen.add(key)
        out[name] = t
    return out


def save_weights(model: nn.Module, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a model's state dict to a ``.safetensors`` file, atomically.

    Args:
        model: the network (its ``state_dict()``, buffers included, is written).
        path: the file to write.
        metadata: string-keyed extra information (values that are not strings are
            stored as JSON), kept in the file's header.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    header = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    with atomic_path(path) as tmp:
        save_file(_tensors(model), str(tmp), metadata=header)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, from its JSON header alone (no torch, no tensors).

    Raises:
        DataError: the file cannot be read or its header is not a safetensors header.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError(f"header length {size}")
            header = json.loads(handle.read(size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from None
    metadata = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def resolve_pretrained(spec: BackboneSpec, name_or_path: str | Path) -> Path:
    """The file behind a pretrained name of ``spec``, or a ``.safetensors`` path.

    Raises:
        UnknownNameError: neither a shipped name nor an existing file.
        FWIError: a pickled checkpoint, or a shipped name whose file is not installed.
    """
    text = str(name_or_path)
    if text in spec.pretrained:
        package, _, resource = spec.pretrained[text].partition(":")
        try:
            ref = importlib.resources.files(package).joinpath(resource)
        except ModuleNotFoundError:
            ref = None
        if ref is None or not ref.is_file():
            raise FWIError(f"pretrained weights {text!r} of backbone {spec.name!r} point to "
                           f"{spec.pretrained[text]}, which is not installed")
        if not isinstance(ref, Path):  # a zipped install: read through a real file instead
            raise FWIError(f"pretrained weights {text!r}: the package is installed zipped; install it "
                           "unzipped or pass the .safetensors path")
        return ref
    path = Path(text).expanduser()
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise FWIError(f"{path}: pickled checkpoints are not loaded (they can run code); convert it to "
                       "safetensors with safetensors.torch.save_file(state_dict, 'weights.safetensors')")
    if path.suffix.lower() == ".safetensors" or path.exists():
        if not path.is_file():
            raise FWIError(f"pretrained weights file {path} does not exist")
        return path
    raise UnknownNameError(f"pretrained weights of backbone {spec.name!r}", text, spec.pretrained,
                           hint="Or give the path of a .safetensors file.")


def load_pretrained(model: nn.Module, spec: BackboneSpec, name_or_path: str | Path) -> dict[str, str]:
    """Load named (shipped) or file weights into ``model``; every tensor must fit.

    Args:
        model: a freshly built backbone.
        spec: its spec (for shipped names).
        name_or_path: a name from ``spec.pretrained`` or a ``.safetensors`` path.

    Returns:
        The metadata stored in the file's header.

    Raises:
        FWIError: missing file, or tensors that are missing, unexpected or of the wrong shape.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = resolve_pretrained(spec, name_or_path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    check_state(model, tensors, source=str(path))
    check_finite(tensors, source=str(path))
    model.load_state_dict(tensors, strict=True)
    return metadata


def check_finite(tensors: Mapping[str, Any], *, source: str) -> None:
    """Raise a :class:`DataError` naming the tensors of ``source`` that hold NaN or infinite values."""
    import torch

    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(f"{source}: NaN or infinite values in {', '.join(bad[:5])}{more} (diverged training?)")


def check_state(model: nn.Module, tensors: Mapping[str, Any], *, source: str, target: str | None = None) -> None:
    """Raise a :class:`DataError` naming the tensors of ``source`` that do not fit ``model``.

    ``target`` names what is loaded into, in the message (the model's class by default).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    wrong = [f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}"
             for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape (file vs network)", wrong)):
        if items:
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        raise DataError(f"{source} does not fit {target or type(model).__name__} (built with other options or "
                        f"shape?): " + "; ".join(problems))
