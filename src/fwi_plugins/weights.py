"""Backbone weights as safetensors: save, and load by shipped name or by path.

Weights are never unpickled: ``torch.load`` on a file someone hands you can run code.
A checkpoint in another format is converted once, by its owner, to safetensors.

Weights are one ``.safetensors`` file, or several in the layout Hugging Face uses for
large models (:func:`save_sharded_weights`): ``model-00001-of-0000N.safetensors`` shards
beside a ``model.safetensors.index.json`` whose ``weight_map`` names each tensor's shard
and whose ``metadata`` holds what a single file keeps in its header. Everywhere a weights
path is accepted, the index file (or the folder holding it) is accepted too.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, FWIError, UnknownNameError
from .atomic import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from torch import nn

    from .specs import BackboneSpec

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")

#: The index of sharded weights, and its shards' names (Hugging Face's layout).
INDEX_NAME = "model.safetensors.index.json"
SHARD_NAME = "model-{index:05d}-of-{count:05d}.safetensors"
#: Default largest shard: files that travel through 16 MiB limits with room for headers.
MAX_SHARD_BYTES = 15 * 2**20


def plain_tensors(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """Detached, contiguous CPU copies of ``tensors``; tensors sharing storage are copied apart."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, tensor in tensors.items():
        t = tensor.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if t.numel() and key in seen:  # safetensors refuses shared memory
            t = t.clone()
        seen.add(key)
        out[name] = t
    return out


def _tensors(model: nn.Module) -> dict[str, Any]:
    """The state dict, as :func:`plain_tensors` prepares it for safetensors."""
    return plain_tensors(model.state_dict())


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
    header = _header_metadata(metadata)
    with atomic_path(path) as tmp:
        save_file(_tensors(model), str(tmp), metadata=header)
    return path


def state_digest(model: nn.Module) -> str:
    """SHA-256 of ``model``'s state (names, dtypes, shapes, bytes): the same for the same weights
    whichever file layout (single file or shards) they were loaded from."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _header_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}


def save_sharded_weights(model: nn.Module, directory: str | Path, metadata: Mapping[str, Any] | None = None, *,
                         max_shard_bytes: int = MAX_SHARD_BYTES) -> Path:
    """Write a model's state dict as safetensors shards plus an index (Hugging Face's layout).

    Tensors go into shards in state-dict order, a new shard starting when the next tensor
    would take the current one past ``max_shard_bytes`` (a tensor larger than that gets a
    shard of its own). Every shard carries ``metadata`` in its header, and the index
    carries it under ``"metadata"`` with ``total_size`` (bytes of tensor data), so the
    weights can be read by :func:`load_tensors` here or by Hugging Face tools. Shards of
    an earlier save with another shard count are removed.

    Args:
        model: the network (its ``state_dict()``, buffers included, is written).
        directory: the folder to write into (created if needed).
        metadata: string-keyed extra information, as for :func:`save_weights`.
        max_shard_bytes: the largest shard's tensor data, in bytes.

    Returns:
        The index file's path.
    """
    from safetensors.torch import save_file

    if max_shard_bytes <= 0:
        raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = _tensors(model)
    groups: list[list[str]] = [[]]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if groups[-1] and size + nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    header = _header_metadata(metadata)
    weight_map: dict[str, str] = {}
    written = set()
    for i, names in enumerate(groups, start=1):
        shard = SHARD_NAME.format(index=i, count=len(groups))
        with atomic_path(directory / shard) as tmp:
            save_file({n: tensors[n] for n in names}, str(tmp), metadata=header)
        weight_map.update({n: shard for n in names})
        written.add(shard)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total, **header}, "weight_map": weight_map}
    path = atomic_write_text(directory / INDEX_NAME, json.dumps(index, indent=2) + "\n")
    for old in directory.glob("model-*-of-*.safetensors"):
        if old.name not in written:
            old.unlink()
    return Path(path)


def is_index(path: str | Path) -> bool:
    """Whether ``path`` names the index of sharded weights (``*.index.json``)."""
    return Path(path).name.endswith(".index.json")


def _read_index(path: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The index's metadata (strings, ``total_size`` left out) and its shards with their tensors."""
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable weights index ({exc})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise DataError(f"{path}: a weights index needs a non-empty 'weight_map' of tensor name -> shard file")
    metadata = index.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DataError(f"{path}: the index's 'metadata' must be a JSON object")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        # A shard is a file beside the index, never a path that leads elsewhere.
        if not isinstance(shard, str) or Path(shard).name != shard or not shard.endswith(".safetensors"):
            raise DataError(f"{path}: tensor {name!r} maps to {shard!r}; shards must be .safetensors files "
                            f"in the index's folder")
        shards.setdefault(shard, []).append(str(name))
    clean = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items() if k != "total_size"}
    return clean, shards


def load_tensors(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors and header metadata of single-file or sharded weights (on CPU).

    Args:
        path: a ``.safetensors`` file or a ``*.index.json`` index.

    Raises:
        DataError: an unreadable file, a missing shard, or shards that do not hold exactly
            the tensors the index names.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not is_index(path):
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
            return load_file(str(path)), metadata
        except (SafetensorError, OSError) as exc:
            raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    metadata, shards = _read_index(path)
    tensors: dict[str, Any] = {}
    for shard, names in shards.items():
        file = path.parent / shard
        if not file.is_file():
            raise DataError(f"{path}: shard {shard} is missing (expected beside the index)")
        try:
            part = load_file(str(file))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"{file}: not a readable safetensors file ({exc})") from exc
        if set(part) != set(names):
            extra, missing = sorted(set(part) - set(names)), sorted(set(names) - set(part))
            raise DataError(f"{file} does not hold the tensors its index names (missing: {missing[:5]}, "
                            f"not in the index: {extra[:5]})")
        tensors.update(part)
    return tensors, metadata


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, from its JSON header alone (no torch, no tensors).

    For sharded weights (an index path) it is the index's ``metadata``, ``total_size`` left out.

    Raises:
        DataError: the file cannot be read or its header is not a safetensors header.
    """
    path = Path(path)
    if is_index(path):
        return _read_index(path)[0]
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

    Sharded weights resolve to their index: an ``*.index.json`` path, or a folder that
    holds ``model.safetensors.index.json``.

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
    if path.is_dir() and (path / INDEX_NAME).is_file():
        return path / INDEX_NAME
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise FWIError(f"{path}: pickled checkpoints are not loaded (they can run code); convert it to "
                       "safetensors with safetensors.torch.save_file(state_dict, 'weights.safetensors')")
    if path.suffix.lower() == ".safetensors" or is_index(path) or path.exists():
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
        name_or_path: a name from ``spec.pretrained``, a ``.safetensors`` path, or sharded
            weights (their index, or its folder).

    Returns:
        The metadata stored in the file's header (the index's, for sharded weights).

    Raises:
        FWIError: missing file, or tensors that are missing, unexpected or of the wrong shape.
    """
    path = resolve_pretrained(spec, name_or_path)
    tensors, metadata = load_tensors(path)
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
