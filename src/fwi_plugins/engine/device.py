"""Where computation runs: the one rule that turns a device name into a device."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    import torch

__all__ = ["autocast", "device_name", "resolve_device"]


def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a device.

    Raises:
        OptionError: an unknown device name, or CUDA asked for where there is none.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise OptionError(f"device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device {device!r}: CUDA is not available here; use --device cpu or auto")
    return resolved


def device_name(device: Any = "auto") -> str:
    """:func:`resolve_device` as a string (``"cpu"``, ``"cuda"``, ``"cuda:1"``), for configs and logs."""
    return str(resolve_device(device))


def autocast(device: Any, enabled: bool) -> Any:
    """bfloat16 autocast for a network on CUDA when ``enabled``; elsewhere a context that does nothing."""
    if enabled and str(device).startswith("cuda"):
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
