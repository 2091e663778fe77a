"""Registration of the built-in backbones."""

from __future__ import annotations

from ..hookspecs import hookimpl
