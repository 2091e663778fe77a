"""Registration of the built-in peft."""

from __future__ import annotations

from ..hookspecs import hookimpl
