"""Former home of :mod:`fwi_plugins.adapted` and :mod:`fwi_plugins.adapter_folder`: a compatibility re-export.

Old imports keep working; the package itself imports from the two modules, and so should new code.
"""

from __future__ import annotations

from .adapted import (TRAINABLE_FORMAT, active_adapter, adapter_names, add_adapter, count_parameters,
                      freeze_statistics, is_peft_model, load_adapted, merge_and_unload, save_adapted,
                      set_adapter, supports_adapters)
from .adapter_folder import CONFIG_NAME, DEFAULT, FORMAT, WEIGHTS_NAME, check_adapter_folder, import_peft

__all__ = ["CONFIG_NAME", "DEFAULT", "FORMAT", "TRAINABLE_FORMAT", "WEIGHTS_NAME", "active_adapter",
           "adapter_names", "add_adapter", "check_adapter_folder", "count_parameters", "freeze_statistics",
           "import_peft", "is_peft_model", "load_adapted", "merge_and_unload", "save_adapted", "set_adapter",
           "supports_adapters"]
