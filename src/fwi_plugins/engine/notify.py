"""Lifecycle notifications: how the engine reports to plugins without knowing pluggy.

Callers hand the engine ``notify(hook_name, **kwargs)`` (the plugin manager's
``notify``); a caller that hands in nothing gets :func:`no_notify`.

A frequent report (``fwi_train_step``) is prepared only when :func:`listens` says someone
reads it, so a hook nobody implements costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Notify", "listens", "no_notify"]

Notify = Callable[..., None]


def no_notify(hook: str, **kwargs: Any) -> None:
    """Report nothing: the notifier of a caller that wants no lifecycle hooks called."""
    return None


def listens(notify: Notify, hook: str) -> bool:
    """Whether ``notify`` passes ``hook`` on to anyone.

    :func:`no_notify` listens to nothing. A notifier that is a method of an object with a
    ``listens(hook)`` method (the plugin manager's ``notify``) is asked, which costs one
    look at the hook's implementations. Any other callable is taken to want every hook.
    """
    if notify is no_notify:
        return False
    ask = getattr(getattr(notify, "__self__", None), "listens", None)
    return bool(ask(hook)) if callable(ask) else True
