"""The study of adaptation methods: which way of adapting a foundation wins, in and out of distribution,
at how many trainable weights and how much target data (``fwi study``; docs/study.md).

Modules: :mod:`.options` (what is asked, checked), :mod:`.plan` (the runs and the choice of
learning rates), :mod:`.store` (the study folder, one file per finished run), :mod:`.data` (the
foundation and the target maps), :mod:`.runs` (one run), :mod:`.report`, :mod:`.text` and
:mod:`.figures` (what is written), :mod:`.job` (all of it in order). Everything goes through
:mod:`fwi_plugins.api`::

    from fwi_plugins.study import from_text, run_study

    options = from_text({"methods": "lora,full", "targets": "salt", "seeds": "0,1"})
    report = run_study(options, Path("studies/salt"))
"""

from __future__ import annotations

from .job import plan_summary, run_study
from .options import StudyOptions, from_text

__all__ = ["StudyOptions", "from_text", "plan_summary", "run_study"]
