"""The misfit registry as a physics uses it: validate a name, get the function.

Misfits are components of kind ``misfit`` (hook ``fwi_misfits``), so a plugin's misfit
is available to every physics that takes a ``misfit`` option. Cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def canonical_misfit(name: str) -> str:
    """The registered name of misfit ``name`` (or an alias).

    For a physics' option dataclass to validate its ``misfit`` option.

    Raises:
        OptionError: no such misfit (saying "Did you mean" and which exist), or two
            plugins registered the name.
    """
    from .errors import OptionError, PluginError, UnknownNameError
    from .manager import get_plugin_manager

    try:
        return get_plugin_manager().get("misfit", str(name)).name
    except (UnknownNameError, PluginError) as exc:
        raise OptionError(f"option 'misfit': {exc}") from None


def get_misfit(name: str) -> Callable[[Any, Any], Any]:
    """The misfit function registered as ``name``: ``misfit(predicted, observed) -> scalar tensor``."""
    from .manager import get_plugin_manager

    return get_plugin_manager().get("misfit", str(name)).load()
