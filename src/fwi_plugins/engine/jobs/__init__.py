"""The jobs behind the commands, one module each (``run``, ``pretrain``, ``predict``, ``refine``,
``simulate``, ``evaluate``, ``runs``), and the run folders they leave behind.

The CLI only parses and prints; it and :mod:`fwi_plugins.api` call these same functions.
Submodules are imported explicitly (``from fwi_plugins.engine.jobs import run``).
"""
