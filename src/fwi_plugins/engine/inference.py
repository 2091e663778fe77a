"""Prediction: velocity from shot gathers, in batches, for inputs of any size.

:func:`predict` reads its input one batch at a time, so a numpy memmap, an ``h5py`` or
xarray variable, or any other lazily indexed array is never loaded whole, and the device
only ever holds one batch. :func:`load_model` builds a backbone by name and loads
weights and an adapter onto it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, OptionError
from .device import autocast, resolve_device

if TYPE_CHECKING:
    import torch

    from ..data.dataset import Normalization
    from ..specs import IOShape

__all__ = ["load_model", "predict", "resolve_device"]


def _sample_count(gathers: Any) -> tuple[int, tuple[int, ...]]:
    shape = tuple(int(s) for s in getattr(gathers, "shape", ()))
    if len(shape) != 4:
        raise DataError(f"gathers must be shaped (N, shot, time, receiver), got shape {shape or type(gathers)}")
    if shape[0] == 0:
        raise DataError(f"gathers hold no samples (shape {shape})")
    return shape[0], shape


def _batch(gathers: Any, start: int, stop: int) -> np.ndarray:
    """One batch as a float32 numpy array; only these samples are read."""
    chunk = gathers[start:stop]
    if hasattr(chunk, "detach"):
        chunk = chunk.detach().cpu().numpy()
    elif hasattr(chunk, "values") and not isinstance(chunk, np.ndarray):  # an xarray variable
        chunk = chunk.values
    chunk = np.asarray(chunk, dtype=np.float32)
    if not chunk.flags.writeable:
        # A read-only memmap view: copy this batch into memory (torch wants writable arrays).
        chunk = chunk.copy()
    if not np.all(np.isfinite(chunk)):
        bad = int(np.count_nonzero(~np.isfinite(chunk)))
        raise DataError(f"gathers samples {start}..{stop - 1} hold {bad} NaN or infinite value(s)")
    return chunk


def predict(model: torch.nn.Module, gathers: Any, *, normalization: Normalization | None = None,
            transform: Callable[[Any], Any] | None = None,
            velocity_from_unit: Callable[[Any], Any] | None = None,
            batch_size: int = 32, device: Any = "auto", progress: bool = True, amp: bool = False) -> np.ndarray:
    """Predict velocity in m/s from raw shot gathers.

    Args:
        model: a backbone mapping normalised gathers ``(B, S, T, R)`` to normalised
            velocity ``(B, 1, Z, X)``.
        gathers: ``(N, S, T, R)`` raw amplitudes: a numpy array, a memmap, a tensor or any
            array indexable by sample slices. Only one batch is read at a time.
        normalization: the dataset's :class:`~fwi_plugins.data.Normalization`; supplies
            ``transform`` (``gathers_to_unit``) and ``velocity_from_unit`` unless they are
            given explicitly. Default: the normalisation of the pretrained weights the
            model was built with (``model.pretrained_cfg``), when neither
            ``transform`` nor ``velocity_from_unit`` is given.
        transform: raw gathers to the network's input scale (numpy or tensor in, same
            out); without it and ``normalization``, gathers go in as they are.
        velocity_from_unit: the network's output scale back to m/s.
        batch_size: samples per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, … (see :func:`resolve_device`).
        progress: show a progress bar.
        amp: run the network under bfloat16 autocast on CUDA (the training loop's validation does).

    Returns:
        ``(N, 1, Z, X)`` float32 velocity in m/s, on the host.

    Raises:
        OptionError: a bad ``batch_size`` or device.
        DataError: gathers of the wrong shape or with non-finite values.
    """
    transform, velocity_from_unit = _scalings(model, normalization, transform, velocity_from_unit)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f"batch_size must be a positive integer, got {batch_size!r}")
    n, _ = _sample_count(gathers)
    target = resolve_device(device)

    was_training = model.training
    model.eval().to(target)
    try:
        return _predict_batches(model, gathers, n, batch_size=batch_size, target=target, transform=transform,
                                velocity_from_unit=velocity_from_unit, amp=amp, progress=progress)
    finally:
        model.train(was_training)


def _predict_batches(model: torch.nn.Module, gathers: Any, n: int, *, batch_size: int, target: Any,
                     transform: Callable[[Any], Any] | None, velocity_from_unit: Callable[[Any], Any], amp: bool,
                     progress: bool) -> np.ndarray:
    """The model's velocity for all ``n`` samples, read and predicted a batch at a time."""
    import torch
    from tqdm.auto import tqdm

    out: np.ndarray | None = None
    with torch.inference_mode(), tqdm(total=n, desc="predict", unit="sample", disable=not progress,
                                       leave=False) as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            # Scaling on the device: the signed log is cheap there and the copy is raw floats.
            x = torch.from_numpy(_batch(gathers, start, stop)).to(target, non_blocking=True)
            velocity = _batch_velocity(model, x, transform, velocity_from_unit, start=start, amp=amp)
            if out is None:
                # The output is small next to the input (one map per sample), so it is
                # allocated whole once the first batch tells its grid.
                out = np.empty((n, *velocity.shape[1:]), dtype=np.float32)
            out[start:stop] = velocity
            bar.update(stop - start)
    assert out is not None  # _sample_count guarantees at least one batch
    return out


def _scalings(model: torch.nn.Module, normalization: Normalization | None, transform: Callable[[Any], Any] | None,
              velocity_from_unit: Callable[[Any], Any] | None
              ) -> tuple[Callable[[Any], Any] | None, Callable[[Any], Any]]:
    """The input scaling and the output scaling back to m/s: given, from ``normalization``, or the weights'."""
    from ..pretrained import config_of

    if normalization is None and transform is None and velocity_from_unit is None:
        carried = config_of(model)
        normalization = carried.normalization if carried is not None else None
    if normalization is not None:
        transform = transform or normalization.gathers_to_unit
        velocity_from_unit = velocity_from_unit or normalization.velocity_from_unit
    if velocity_from_unit is None:
        raise TypeError("predict needs normalization= or velocity_from_unit= to return m/s (the model "
                        "carries no normalisation of pretrained weights)")
    return transform, velocity_from_unit


def _batch_velocity(model: torch.nn.Module, x: torch.Tensor, transform: Callable[[Any], Any] | None,
                    velocity_from_unit: Callable[[Any], Any], *, start: int, amp: bool = False) -> np.ndarray:
    """One batch's velocity in m/s on the host, checked to be one finite map per sample."""
    count = x.shape[0]
    if transform is not None:
        x = transform(x)
    with autocast(x.device, amp):
        y = model(x)
    if y.ndim != 4 or y.shape[0] != count:
        raise DataError(f"the model returned shape {tuple(y.shape)} for a batch of {count}; "
                        f"expected (batch, 1, depth, x)")
    velocity = velocity_from_unit(y.float()).cpu().numpy().astype(np.float32, copy=False)
    if not np.isfinite(velocity).all():  # found here, not when the result is written
        bad = start + int(np.flatnonzero(~np.isfinite(velocity).reshape(len(velocity), -1).all(1))[0])
        raise DataError(f"the network predicts NaN or infinite velocity (sample {bad}): its weights "
                        f"or the input gathers hold NaN or infinite values")
    return velocity


def load_model(backbone: str, options: Mapping[str, Any] | Any = None, weights_path: str | Path | None = None,
               adapter_dir: str | Path | None = None, *, pretrained: str | None = None,
               shape: IOShape | None = None) -> torch.nn.Module:
    """Build a backbone by name and load its weights and, optionally, an adapter.

    Args:
        backbone: registered backbone name (``fwi list``).
        options: backbone options (a mapping of values or its option dataclass).
        weights_path: a ``.safetensors`` file of full weights for this backbone (for
            example from ``fwi pretrain`` or a full fine-tune).
        adapter_dir: a directory saved by :func:`fwi_plugins.adapted.save_adapted`
            (peft layout); the adapter is loaded on top of the weights.
        pretrained: named weights shipped with the backbone (``"default"``), a
            ``.safetensors`` path, or ``"none"``; see :func:`fwi_plugins.api.build_backbone`.
            Give the weights once: ``pretrained`` or ``weights_path``.
        shape: the sizes the network is built for (default: the weights', else OpenFWI's).

    Either way, the weights are applied as :func:`fwi_plugins.api.build_backbone`
    applies them: their options, shape and normalisation (``model.pretrained_cfg``).

    Returns:
        The model, in eval mode.

    Raises:
        OptionError: both ``weights_path`` and ``pretrained``, or an option that does
            not fit the weights.
    """
    from ..pretrained import build_backbone
    from .components import registry_spec

    if weights_path is not None and not Path(weights_path).is_file():
        raise DataError(f"weights file {weights_path} does not exist (expected a .safetensors file)")
    if adapter_dir is not None:  # every file checked before the backbone is built
        from ..adapter_folder import check_adapter_folder

        check_adapter_folder(adapter_dir)
    if weights_path is not None and pretrained is not None:
        raise OptionError(f"weights given twice (pretrained {pretrained!r} and weights file {weights_path}); "
                          f"give one")
    source = str(weights_path) if weights_path is not None else pretrained
    model = build_backbone(registry_spec("backbone", backbone), options, shape=shape, pretrained=source)
    if adapter_dir is not None:
        from ..adapted import load_adapted
        from ..pretrained import attach, config_of

        config = config_of(model)
        adapted = load_adapted(model, adapter_dir)
        model = adapted if adapted is not None else model
        if config_of(model) is None and config is not None:
            attach(model, config)
    model.eval()
    return model
