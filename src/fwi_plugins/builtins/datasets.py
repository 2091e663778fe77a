"""Registration of the built-in datasets."""

from __future__ import annotations

from ..hookspecs import hookimpl
