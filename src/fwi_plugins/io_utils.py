"""Former home of :mod:`fwi_plugins.atomic` and :mod:`fwi_plugins.settings_files`: a compatibility re-export.

Old imports keep working; the package itself imports from the two modules, and so should new code.
"""

from __future__ import annotations

from .atomic import (PART_SUFFIX, atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text, current_umask,
                     is_leftover, remove_leftovers, replace_dir, respect_umask)
from .settings_files import read_toml_or_json, to_toml, tomllib

__all__ = ["PART_SUFFIX", "atomic_dir", "atomic_path", "atomic_write_bytes", "atomic_write_text", "current_umask",
           "is_leftover", "read_toml_or_json", "remove_leftovers", "replace_dir", "respect_umask", "to_toml",
           "tomllib"]
