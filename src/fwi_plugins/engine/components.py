"""Components by name, for engine entry points that are handed names rather than built objects.

The engine is otherwise handed what it works with; where a caller gives a name, it is
looked up in the plugin registry here (imported on call, so the engine's modules stay
free of it and nothing imports the API layer back).
"""

from __future__ import annotations

from typing import Any


def registry_spec(kind: str, name: str) -> Any:
    """The spec registered as ``name`` in ``kind`` (``UnknownNameError`` with suggestions)."""
    from ..manager import get_plugin_manager

    return get_plugin_manager().get(kind, name)
