"""fwi-plugins: plugin-based deep-learning full-waveform inversion.

Importing this package is cheap (no torch): specs, the hook marker and the plugin
manager are here; the heavy parts load when a component is built. The Python API lives
in :mod:`fwi_plugins.api`.
"""

from .errors import FWIError
from .hookspecs import hookimpl, hookspec
from .manager import get_plugin_manager, reset_plugin_manager
from .specs import (KINDS, BackboneSpec, ComponentSpec, DatasetSpec, IOShape, MisfitSpec, PeftMethodSpec,
                    PhysicsSpec)
from .survey import Survey

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "BackboneSpec",
    "ComponentSpec",
    "DatasetSpec",
    "FWIError",
    "IOShape",
    "MisfitSpec",
    "PeftMethodSpec",
    "PhysicsSpec",
    "Survey",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "reset_plugin_manager",
]
