"""Lifecycle notifications: how the engine reports to plugins without knowing pluggy.

Callers hand the engine ``notify(hook_name, **kwargs)`` (the plugin manager's
``notify``); a caller that hands in nothing gets :func:`no_notify`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Notify", "no_notify"]

Notify = Callable[..., None]


def no_notify(hook: str, **kwargs: Any) -> None:
    """Report nothing: the notifier of a caller that wants no lifecycle hooks called."""
    return None
