"""What every job (``fwi run``, ``fwi pretrain``) does first, and what they share.

:func:`start_job` resolves the configuration against the registry, joins the process
group when launched by ``torchrun``, and prepares the run directory: a directory that
holds another configuration is refused, and the same configuration run again into the
same directory resumes. Importing this module stays free of torch.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from ...atomic import is_leftover, remove_leftovers
from ...errors import ConfigError
from ..config import ResolvedConfig, RunConfig

if TYPE_CHECKING:
    from ...data import SeismicDataset
    from ...data.rows import RowStack
    from ...physics import Physics
    from ...specs import IOShape
    from ...survey import Survey
    from ..training.distributed import DistInfo

__all__ = ["GetSpec", "JOB_OUTPUTS", "default_out", "hardware", "io_shape", "load_arrays", "prepare_run_dir",
           "release_run_dir", "resolve", "start_job", "with_pretrained_options"]

GetSpec = Callable[[str, str], Any]

# Keys that may change between a run and its resumption without changing its result.
# What may change between the calls of one job: how it runs, not what it trains. The time
# budgets are per invocation (a resumed call usually has another), so they are here too.
_RESUMABLE_DIFFS = ("argv", "out", "options.device", "options.progress", "options.figures",
                    "options.cache_dir", "options.eval_batch_size", "options.max_minutes",
                    "options.checkpoint_minutes")


#: What each job writes in its run directory (a name ending in ``/`` is a folder written whole):
#: the run directory's manifest records them before the job starts, so a file of someone
#: else's at one of these paths is refused then, not replaced at the end.
JOB_OUTPUTS = {
    "run": ("config.toml", "config.json", "metrics.json", "adapter/", "predictions/", "figures/",
            "checkpoints/", "self-training/"),
    "pretrain": ("config.toml", "config.json", "metrics.json", "weights.safetensors", "model_card.json",
                 "model_card.md", "figures/", "checkpoints/"),
}


def _registry_get_spec() -> GetSpec:
    # Only when a caller hands in no resolver.
    from ..components import registry_spec

    return registry_spec


def resolve(config: RunConfig | ResolvedConfig, get_spec: GetSpec | None = None) -> ResolvedConfig:
    """``config`` checked against the registry (see :meth:`RunConfig.resolve`).

    For ``run``, backbone options the foundation weights were trained with fill in the
    ones not given explicitly (see :func:`with_pretrained_options`).
    """
    if isinstance(config, ResolvedConfig):
        return config
    get_spec = get_spec or _registry_get_spec()
    return with_pretrained_options(config, get_spec).resolve(get_spec)


def with_pretrained_options(config: RunConfig, get_spec: GetSpec) -> RunConfig:
    """Build the backbone the way its foundation weights were built.

    Weights written by ``fwi pretrain`` record their backbone and its options; options
    given explicitly override them only where compatible (see
    :func:`fwi_plugins.pretrained.backbone_options`). ``pretrained = "none"`` (the
    scratch baseline) takes the architecture of the backbone's default weights.

    Raises:
        ConfigError: the weights belong to another backbone.
        OptionError: an option the weights fix, given another value.
        UnknownNameError: ``pretrained`` is neither a shipped name nor a file.
    """
    from ...pretrained import backbone_options
    from ..config import Component

    items = config.components.get("backbone") or ()
    if config.command != "run" or not items:
        return config
    spec = get_spec("backbone", items[0].name)
    try:
        options, _ = backbone_options(spec, items[0].options, str(config.options.get("pretrained", "default")))
    except ConfigError as exc:
        raise ConfigError(f"option 'pretrained': {exc}") from None
    if options == dict(items[0].options):
        return config
    merged = Component(items[0].name, options)
    return dataclasses.replace(config, components={**config.components, "backbone": (merged, *items[1:])})


def default_out(config: RunConfig) -> Path:
    """``runs/<backbone>-<peft>-<dataset>`` (run) or ``runs/pretrain-<backbone>`` (pretrain).

    Deterministic on purpose: the same command run again finds its own directory and resumes.
    """
    def first(kind: str) -> str:
        items = config.components.get(kind) or ()
        return items[0].name if items else kind

    if config.command == "pretrain":
        return Path("runs") / f"pretrain-{first('backbone')}"
    labels = "-labelfree" if config.options.get("labels") == "none" else ""
    return Path("runs") / f"{first('backbone')}-{first('peft')}-{first('dataset')}{labels}"


def prepare_run_dir(resolved: ResolvedConfig, *, is_main: bool = True) -> tuple[Path, ResolvedConfig]:
    """Create (or reopen) the run directory, hold it, and write the configuration into it.

    A directory that already holds a different configuration is refused, naming the
    first differing key: resuming it would mix two jobs. So is a folder holding files the
    job did not write at a path it writes (see :data:`JOB_OUTPUTS`), and a folder another
    live process holds (see :class:`~fwi_plugins.engine.jobs.lock.FolderLock`); the main process
    holds it until :func:`release_run_dir`.
    """
    from .lock import FolderLock

    config = resolved.config
    out = Path(config.out) if config.out else default_out(config)
    out = out.expanduser().resolve()
    config = dataclasses.replace(config, out=str(out))
    resolved = dataclasses.replace(resolved, config=config)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    outputs = JOB_OUTPUTS.get(config.command, JOB_OUTPUTS["run"])
    _check_reusable(out, config, outputs)
    # A run that wrote nothing but its configuration (it failed on a bad input, say) does
    # not hold its folder: the corrected command starts it again.
    if is_main:
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(out)
        try:
            lock.acquire()
        except BaseException:
            _remove_if_made(out, created)
            raise
        try:
            _check_reusable(out, config, outputs)  # again, now that no other job can write there
            manifest = _manifest(out, config.command)
            if not manifest.exists() and _is_earlier_run(out):
                manifest.record(*outputs)  # a run directory of a version that kept no manifest
            manifest.claim(*outputs)
            remove_leftovers(out)  # temporaries of writes a killed run never finished
            config.save(out / "config.toml")
            config.save(out / "config.json")
        except BaseException:
            lock.release()
            _remove_if_made(out, created)
            raise
    return out, resolved


def _remove_if_made(out: Path, created: bool) -> None:
    """Remove the run directory a failed start made, with the bookkeeping it wrote: it holds no work."""
    if not created:
        return
    import shutil

    if not _files(out):
        shutil.rmtree(out, ignore_errors=True)


def release_run_dir(out: str | Path) -> None:
    """Give up the run directory :func:`prepare_run_dir` held (nothing when this process holds none)."""
    from .lock import FolderLock

    FolderLock(Path(out)).release()


def _manifest(out: Path, command: str) -> Any:
    from .rundir import OutputManifest

    return OutputManifest(out, tool=f"fwi {command}", hint="choose another --out, or move it away")


def _is_earlier_run(out: Path) -> bool:
    """Whether ``out`` is a run directory written before run directories kept a manifest.

    Such a directory holds ``config.toml`` and ``config.json`` saved from one configuration;
    a user's own configuration file does not come with the other one matching it.
    """
    from ..config import load_config

    toml, json_file = out / "config.toml", out / "config.json"
    if not (toml.is_file() and json_file.is_file()):
        return False
    try:
        return not load_config(toml).diff(load_config(json_file))
    except (ConfigError, OSError, ValueError):
        return False


def _check_reusable(out: Path, config: RunConfig, outputs: tuple[str, ...]) -> None:
    """Refuse ``out`` if it holds work of another configuration, or files that are not the run's."""
    manifest = _manifest(out, config.command)
    if out.is_dir() and not manifest.exists() and not _is_earlier_run(out):
        found = _files(out)
        if found:  # a folder of someone's files: a run would overwrite config.* and metrics.json
            raise ConfigError(f"--out {out} is not empty and is not a run directory (fwi did not write "
                              f"{found[0]}); choose a new or empty folder")
    elif manifest.exists():
        foreign = manifest.foreign(*outputs)
        if foreign:
            raise ConfigError(f"--out {out} holds {foreign[0]}, which fwi did not write and the run would "
                              f"replace; choose another --out, or move it away")
    existing = out / "config.json"
    work = _work_done(out)
    if existing.is_file() and work:
        try:
            old = RunConfig.from_dict(json.loads(existing.read_text()), source=str(existing))
        except (json.JSONDecodeError, UnicodeDecodeError, ConfigError) as exc:
            raise ConfigError(f"{out} holds an unreadable config.json ({exc}); choose another --out") from None
        changed = config.diff(old, ignore=_RESUMABLE_DIFFS)
        if changed:
            key = changed[0]
            raise ConfigError(
                f"{out} holds a run with a different configuration (key {key!r}: "
                f"{_lookup(old, key)!r} there, {_lookup(config, key)!r} now); "
                f"choose another --out, or delete that directory to start over")
    elif work:
        raise ConfigError(f"--out {out} is not empty and is not a run directory (it holds no config.json, but "
                          f"{work[0]}); choose a new or empty folder")


def _files(out: Path) -> list[str]:
    """The files in ``out`` (sorted), less the temporaries of killed writes and the run's own bookkeeping."""
    from .lock import LOCK
    from .rundir import MANIFEST

    if not out.is_dir():
        return []
    found = []
    for path in out.rglob("*"):
        relative = path.relative_to(out)
        if any(is_leftover(Path(part)) for part in relative.parts):
            continue
        if path.is_dir() and not path.is_symlink():
            continue
        if relative.as_posix() in (MANIFEST, LOCK) or relative.name.startswith(f"{LOCK}."):
            continue
        found.append(relative.as_posix())
    return sorted(found)


def _work_done(out: Path) -> list[str]:
    """The files in ``out`` that a run's configuration alone does not account for (sorted)."""
    return [f for f in _files(out) if f not in ("config.toml", "config.json")]


def _lookup(config: RunConfig, dotted: str) -> Any:
    """The value of the dotted key ``dotted`` (as :meth:`RunConfig.diff` names keys) in ``config``."""
    from ..config import flatten_keys

    return flatten_keys(config.to_dict()).get(dotted)


def start_job(config: RunConfig | ResolvedConfig, command: str,
              get_spec: GetSpec | None = None) -> tuple[ResolvedConfig, DistInfo, Path]:
    """The first steps of every job: resolve, check the command, join the process group,
    prepare the run directory. Returns ``(resolved, dist_info, run_dir)``."""
    from ..training.distributed import setup_distributed

    resolved = resolve(config, get_spec)
    if resolved.config.command != command:
        other = "pretrain" if command == "run" else "run"
        raise ConfigError(f"key 'command' is {resolved.config.command!r}; use {other}() for it")
    info = setup_distributed(resolved.options.device)
    out, resolved = prepare_run_dir(resolved, is_main=info.is_main)
    return resolved, info, out


def hardware(device: str, world_size: int = 1) -> dict[str, Any]:
    """What the job ran on, for model cards and metrics."""
    import torch

    info: dict[str, Any] = {"device": device, "processes": world_size, "platform": platform.platform(),
                            "python": platform.python_version(), "torch": torch.__version__,
                            "cpu": platform.processor() or platform.machine(),
                            "cpu_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


@overload
def load_arrays(ds: SeismicDataset, physics: Physics | None, split: str, *, cache_dir: str | None,
                progress: bool, labels: bool, mmap: Literal[False] = ...) -> tuple[np.ndarray, np.ndarray | None]: ...


@overload
def load_arrays(ds: SeismicDataset, physics: Physics | None, split: str, *, cache_dir: str | None,
                progress: bool, labels: bool, mmap: bool) -> tuple[np.ndarray | RowStack, np.ndarray | None]: ...


def load_arrays(ds: SeismicDataset, physics: Physics | None, split: str, *, cache_dir: str | None,
                progress: bool, labels: bool, mmap: bool = False) -> tuple[np.ndarray | RowStack, np.ndarray | None]:
    """Gathers (simulated and cached if the dataset records none; memory-mapped from the
    cache with ``mmap``) and, if asked, velocity."""
    gathers = ds.gathers(split, physics, cache_dir=cache_dir or None, progress=progress, mmap=mmap)
    velocity = ds.velocity(split) if labels and ds.has_labels else None
    return gathers, velocity


def io_shape(survey: Survey) -> IOShape:
    """The network input and output shape a backbone is built for, from the survey of its data."""
    from ...specs import IOShape

    return IOShape(shots=survey.n_shots, time=survey.nt, receivers=survey.n_receivers,
                   depth=survey.nz, width=survey.nx)
