"""The hook implementations: one :class:`~fwi_tensorboard.log.RunLog` per run directory.

Imported whenever the plugin registry loads (``fwi list`` as much as ``fwi run``), so it
imports neither torch nor tensorboard: :mod:`fwi_tensorboard.log` is imported when a run
starts.
"""

from __future__ import annotations

import atexit
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fwi_plugins import hookimpl

if TYPE_CHECKING:
    from .log import RunLog

_RUNS: dict[Path, RunLog] = {}
#: Runs started but not logged yet: their configuration, until training reports (a refinement,
#: which trains nothing, gets no tensorboard/ folder).
_PENDING: dict[Path, Mapping[str, Any] | None] = {}


def _key(run_dir: Any) -> Path:
    return Path(run_dir).resolve()


def _open(run_dir: Any, config: Mapping[str, Any] | None) -> RunLog:
    from .log import RunLog

    key = _key(run_dir)
    if key in _RUNS:  # a run that never reported its end (an earlier failure in this process)
        _RUNS.pop(key).close()
    _RUNS[key] = RunLog(key, config)
    return _RUNS[key]


def _log(run_dir: Any) -> RunLog | None:
    """The run's log; training called from Python without ``fwi_run_started`` gets one on first report."""
    if run_dir is None:
        return None
    key = _key(run_dir)
    return _RUNS.get(key) or _open(run_dir, _PENDING.pop(key, None))


@hookimpl
def fwi_run_started(run_dir, config):
    key = _key(run_dir)
    if key in _RUNS:  # a run that never reported its end (an earlier failure in this process)
        _RUNS.pop(key).close()
    _PENDING[key] = config


@hookimpl
def fwi_train_step(run_dir, stage, step, metrics):
    log = _log(run_dir)
    if log is not None:
        log.train_step(stage, step, metrics)


@hookimpl
def fwi_epoch_end(run_dir, stage, epoch, metrics):
    log = _log(run_dir)
    if log is not None:
        log.epoch_end(stage, epoch, metrics)


@hookimpl
def fwi_predictions_ready(run_dir, stage, path, predictions):
    # Only runs this plugin logs: fwi predict's output folder gets no tensorboard/ of its own.
    log = _RUNS.get(_key(run_dir)) if run_dir is not None else None
    if log is not None:
        log.predictions(stage, predictions)


@hookimpl
def fwi_run_finished(run_dir, metrics):
    _PENDING.pop(_key(run_dir), None)
    log = _RUNS.pop(_key(run_dir), None)
    if log is not None:
        log.finish(metrics)


@atexit.register
def _close_all() -> None:
    """A run that failed still leaves what it logged readable."""
    while _RUNS:
        _RUNS.popitem()[1].close()
