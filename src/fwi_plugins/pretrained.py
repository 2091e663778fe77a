"""One pretrained path: how a weights file was made, applied the same way everywhere.

A weights file written by ``fwi pretrain`` records, in its safetensors header, the
backbone it belongs to, the options it was built with, the acquisition (shape) it was
trained for and the normalisation it learned, as timm's pretrained configurations do.
:func:`build_backbone` is the one place that turns a ``pretrained`` choice into a
network: ``fwi run``, ``fwi predict``, ``fwi refine``, :func:`fwi_plugins.api.build_backbone`
and :func:`fwi_plugins.engine.inference.load_model` all come through it (``fwi run``
through :func:`backbone_options`, since its job builds the network itself).

Options a user gives override the weights' only where they leave the weights' meaning
intact (options declared with ``option(..., architecture=False)``, such as dropout) or
repeat the weights' value; any other is refused, naming the option.

Nothing here imports torch until a network is built.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, FWIError, OptionError
from .specs import IOShape

if TYPE_CHECKING:
    from torch import nn

    from .data.dataset import Normalization
    from .specs import BackboneSpec

__all__ = ["PretrainedConfig", "backbone_options", "build_backbone", "choose", "config_of", "from_header",
           "load_weights", "read_config", "read_file", "read_normalization"]

#: The ``pretrained`` values that are not weights: the backbone's default shipped weights,
#: and an untrained network with the default weights' architecture.
DEFAULT, NONE = "default", "none"


@dataclasses.dataclass(frozen=True)
class PretrainedConfig:
    """What a weights file says about how it was made.

    Attributes:
        source: the shipped name or path the weights were asked for by.
        path: the safetensors file.
        backbone: the backbone they belong to (``None`` when the file does not say).
        options: the backbone options they were built with (empty when the file does not say).
        shape: the gathers and velocity sizes they were trained for (``None`` when not recorded).
        normalization: the scaling of gathers and velocity they learned (``None`` when not recorded).
        wavelet: the source wavelet they were trained with (``kind``, ``peak_freq`` Hz, ``delay`` s);
            ``None`` when not recorded (weights made before it was: OpenFWI's 15 Hz Ricker).
        metadata: the whole header, as stored (strings).
        digest: the SHA-256 of the weights' tensors once loaded into a network
            (:func:`fwi_plugins.weights.state_digest`); empty when only the header was read.
    """

    source: str
    path: Path
    backbone: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    shape: IOShape | None = None
    normalization: Normalization | None = None
    wavelet: Mapping[str, Any] | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    digest: str = ""

    @property
    def label(self) -> str:
        """How messages name the weights: the name asked for, and the file when it differs."""
        return self.source if self.source == str(self.path) else f"{self.source!r} ({self.path.name})"


def choose(spec: BackboneSpec, pretrained: str | None) -> str | None:
    """The shipped name or path ``pretrained`` stands for; ``None`` for no weights.

    ``"default"`` is the backbone's default shipped weights (``None`` when it ships none),
    ``"none"`` (any case) and ``None`` are no weights.
    """
    if pretrained is None:
        return None
    text = str(pretrained).strip()
    if text.lower() == NONE:
        return None
    if text.lower() == DEFAULT:
        shipped = dict(spec.pretrained or {})
        if not shipped:
            return None
        return DEFAULT if DEFAULT in shipped else sorted(shipped)[0]
    return text


def _json(metadata: Mapping[str, str], key: str, path: Path) -> Any:
    raw = metadata.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: metadata {key!r} is not valid JSON ({exc.msg})") from None


def read_normalization(metadata: Mapping[str, str], path: str | Path) -> Normalization | None:
    """The normalisation a weights header records (``None`` when it records none).

    The one reader of the ``normalization`` entry: :func:`read_config` and every job that
    loads weights (``fwi run``, ``fwi pretrain --init``, ``fwi predict``) come through it.

    Raises:
        DataError: an entry that is not JSON, or not a normalisation, naming ``path``.
    """
    from .data.dataset import Normalization

    raw = metadata.get("normalization")
    if raw is None:
        return None
    try:
        entry = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise DataError(f"{path}: metadata 'normalization' is not valid JSON ({exc})") from None
    if not (isinstance(entry, Mapping) and "vmin" in entry and "vmax" in entry):
        raise DataError(f"{path}: metadata 'normalization' does not hold vmin and vmax (as "
                        f"Normalization.to_dict() writes them)")
    try:
        return Normalization.from_dict(entry)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: metadata 'normalization' does not parse ({exc})") from None


def _wavelet(metadata: Mapping[str, str], path: Path) -> Mapping[str, Any] | None:
    wavelet = _json(metadata, "wavelet", path)
    if wavelet is not None and not (isinstance(wavelet, Mapping) and wavelet.get("kind") == "ricker"
                                    and isinstance(wavelet.get("peak_freq"), (int, float))):
        raise DataError(f"{path}: metadata 'wavelet' must be a JSON object with kind 'ricker' and a peak_freq in "
                        f"Hz, got {wavelet!r}")
    return wavelet


def from_header(source: str, path: str | Path, metadata: Mapping[str, str], *, label: str | Path | None = None,
                digest: str = "") -> PretrainedConfig:
    """The one parser of a weights header: every entry read once into a :class:`PretrainedConfig`.

    Args:
        source: the shipped name or path the weights were asked for by.
        path: the file the header was read from (messages name it).
        metadata: the header's ``__metadata__``.
        label: how messages about the ``normalization`` entry name the weights (``path`` by default).
        digest: the loaded tensors' digest, when they were loaded.

    Raises:
        DataError: an entry that is not JSON or not what it should hold, naming the weights.
    """
    path = Path(path)
    options = _json(metadata, "backbone_options", path) or {}
    if not isinstance(options, Mapping):
        raise DataError(f"{path}: metadata 'backbone_options' must be a JSON object, got {options!r}")
    shape = _json(metadata, "shape", path)
    try:
        shape = IOShape(**shape) if shape is not None else None
    except TypeError:
        raise DataError(f"{path}: metadata 'shape' must hold shots, time, receivers, depth and width, "
                        f"got {shape!r}") from None
    normalization = read_normalization(metadata, path if label is None else label)
    return PretrainedConfig(source=source, path=path, backbone=metadata.get("backbone"), options=dict(options),
                            shape=shape, normalization=normalization, wavelet=_wavelet(metadata, path),
                            metadata=dict(metadata), digest=digest)


def read_config(spec: BackboneSpec, name_or_path: str | Path) -> PretrainedConfig:
    """Read how the weights ``name_or_path`` of ``spec`` were made, from their header alone.

    Raises:
        UnknownNameError: neither a shipped name nor a file.
        ConfigError: the weights belong to another backbone.
        DataError: an unreadable file, or metadata that does not parse.
    """
    from .weights import read_metadata, resolve_pretrained

    source = str(name_or_path)
    path = resolve_pretrained(spec, source)
    metadata = read_metadata(path)
    owner = metadata.get("backbone")
    if owner and owner.lower().replace("_", "-") != spec.name:
        raise ConfigError(f"pretrained weights {source} belong to backbone {owner!r}, not {spec.name!r}; "
                          f"use backbone {owner!r} with them")
    return from_header(source, path, metadata)


def read_file(path: str | Path, *, why: str = "") -> PretrainedConfig:
    """The configuration in the header of the ``.safetensors`` file ``path``, as safetensors itself reads it.

    A damaged header is an error, not an empty configuration; ``why`` ends the first part
    of its message (", so its normalisation cannot be read").

    Raises:
        DataError: a file safetensors cannot read, or metadata that does not parse.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable safetensors file{why} ({exc})") from None
    return from_header(str(path), path, metadata)


def load_weights(model: nn.Module, spec: BackboneSpec, name_or_path: str | Path, *,
                 label: str | None = None, wrap: bool = False) -> PretrainedConfig:
    """Load the weights ``name_or_path`` into ``model``; their configuration, digest included.

    ``label`` names the weights in messages about their normalisation (their path by
    default); with ``wrap``, errors loading the tensors become a :class:`ConfigError`
    starting with ``label`` (an option's name, say).

    Raises:
        FWIError: see :func:`fwi_plugins.weights.load_pretrained`; DataError: metadata that does not parse.
    """
    from .weights import load_pretrained, resolve_pretrained, state_digest

    try:
        metadata = load_pretrained(model, spec, name_or_path)
    except FWIError as exc:
        if not wrap:
            raise
        raise ConfigError(f"{label}: {exc}") from exc
    return from_header(str(name_or_path), resolve_pretrained(spec, name_or_path), metadata, label=label,
                       digest=state_digest(model))


def _given(options: Mapping[str, Any] | Any) -> dict[str, Any]:
    if options is None:
        return {}
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        from .options import to_dict

        return to_dict(options)
    return {str(k).replace("-", "_"): v for k, v in dict(options).items()}


def _fixed_by_weights(spec: BackboneSpec, key: str) -> bool:
    for field in dataclasses.fields(spec.options or ()):
        if field.name == key:
            return bool(field.metadata.get("architecture", True))
    return True


def merge_options(spec: BackboneSpec, config: PretrainedConfig, options: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The weights' options with the user's ``options`` on top, where they are compatible.

    An option given by the user may differ from the weights' only when the backbone
    declares it ``architecture=False`` (it changes how the network trains, not what its
    weights mean); otherwise it must repeat the weights' value.

    Raises:
        OptionError: an option the weights fix, given another value; it is named.
        DataError: the weights' own options do not parse.
    """
    given = _given(options)
    if not config.options:
        return given  # the file does not say how it was built: the tensors are checked on loading
    try:
        trained = spec.parse_options(config.options)
    except FWIError as exc:
        raise DataError(f"{config.path}: the backbone options stored with the weights do not fit backbone "
                        f"{spec.name!r} ({exc})") from None
    merged = {**config.options, **given}
    wanted = spec.parse_options(merged)
    for key in given:
        if not _fixed_by_weights(spec, key):
            continue
        ours, theirs = getattr(wanted, key), getattr(trained, key)
        if ours != theirs:
            raise OptionError(f"backbone option {key!r} = {ours!r} does not fit the pretrained weights "
                              f"{config.label} (built with {key} = {theirs!r}); leave it out to use the "
                              f"weights' value, or build an untrained network with pretrained 'none'")
    return merged


def _default_config(spec: BackboneSpec) -> PretrainedConfig | None:
    choice = choose(spec, DEFAULT)
    return read_config(spec, choice) if choice is not None else None


def _untrained_reference(spec: BackboneSpec) -> PretrainedConfig | None:
    """The default weights' configuration, whose architecture ``"none"`` builds untrained.

    Only the header is read, never the tensors; weights the plugin ships but that cannot be
    read leave ``"none"`` an untrained network with the options given, with a warning.
    """
    try:
        return _default_config(spec)
    except FWIError as exc:
        import warnings

        warnings.warn(f"pretrained 'none': {exc}; building backbone {spec.name!r} untrained with the options "
                      f"given instead of the default weights' architecture", UserWarning, stacklevel=3)
        return None


def backbone_options(spec: BackboneSpec, options: Mapping[str, Any] | Any,
                     pretrained: str | None) -> tuple[dict[str, Any], PretrainedConfig | None]:
    """The options to build ``spec`` with for ``pretrained``, and the weights' configuration.

    * a shipped name or a path: the weights' options, with ``options`` on top where
      compatible (see :func:`merge_options`);
    * ``"none"``: the architecture of the backbone's default weights (so a scratch
      baseline is the foundation's network, untrained), every one of ``options`` on top;
      the configuration returned is ``None``;
    * ``None``: ``options`` as given.
    """
    if pretrained is None:
        return _given(options), None
    choice = choose(spec, pretrained)
    if choice is None:
        base = _untrained_reference(spec) if str(pretrained).strip().lower() == NONE else None
        return {**(dict(base.options) if base else {}), **_given(options)}, None
    config = read_config(spec, choice)
    return merge_options(spec, config, options), config


def config_of(model: Any) -> PretrainedConfig | None:
    """The pretrained configuration a network was built with (``None`` for none)."""
    config = getattr(model, "pretrained_cfg", None)
    return config if isinstance(config, PretrainedConfig) else None


def attach(model: nn.Module, config: PretrainedConfig | None) -> nn.Module:
    """Record ``config`` on ``model`` (``model.pretrained_cfg``) so that predicting needs nothing more."""
    model.pretrained_cfg = config  # type: ignore[assignment]
    return model


def _acquisition(shape: IOShape) -> str:
    return (f"{shape.shots} shots x {shape.time} samples x {shape.receivers} receivers, "
            f"{shape.depth} x {shape.width} grid")


def build_backbone(spec: BackboneSpec, options: Mapping[str, Any] | Any = None, *, shape: IOShape | None = None,
                   pretrained: str | None = None) -> nn.Module:
    """Build ``spec``'s network the way ``pretrained`` says, and load the weights.

    Args:
        spec: the backbone.
        options: backbone options given by the user (see :func:`backbone_options`).
        shape: the sizes to build for; default: the weights' (OpenFWI's without weights).
        pretrained: a shipped name (``"default"``: the backbone's default), a
            ``.safetensors`` path, ``"none"`` (the default weights' architecture,
            untrained) or ``None`` (``options`` as given, untrained).

    Returns:
        The network, with the weights' configuration (normalisation included) as
        ``model.pretrained_cfg`` (``None`` when untrained).

    Raises:
        FWIError: ``"default"`` for a backbone that ships no weights; weights that do not
            fit (naming the option, or the tensors and the acquisition they were trained for).
    """
    from .weights import load_pretrained

    if pretrained is not None and str(pretrained).strip().lower() == DEFAULT and not spec.pretrained:
        raise FWIError(f"backbone {spec.name!r} ships no pretrained weights; give the path of a .safetensors "
                       f"file, or 'none' for an untrained network")
    merged, config = backbone_options(spec, options, pretrained)
    if shape is None:
        untrained = pretrained is not None and str(pretrained).strip().lower() == NONE
        reference = config or (_untrained_reference(spec) if untrained else None)
        shape = (reference.shape if reference else None) or IOShape()
    model = spec.load()(spec.parse_options(merged), shape=shape)
    if config is not None:
        try:
            load_pretrained(model, spec, config.path)
        except DataError as exc:
            if config.shape is None or config.shape == shape:
                raise
            raise DataError(f"{exc}; the weights {config.label} were trained for {_acquisition(config.shape)}, "
                            f"the network was built for {_acquisition(shape)}") from None
    return attach(model, config)
