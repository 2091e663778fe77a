"""Former home of :mod:`.targets` and :mod:`.adapted_model`: a compatibility re-export.

Old imports keep working; the package itself imports from the two modules, and so should new code.
"""

from __future__ import annotations

from ..adapted import freeze_statistics, thaw_statistics
from .adapted_model import AdaptedModel, Bottleneck, load_folder, save_folder
from .targets import as_peft_targets, matches, select

__all__ = ["AdaptedModel", "Bottleneck", "as_peft_targets", "freeze_statistics", "load_folder", "matches",
           "save_folder", "select", "thaw_statistics"]
