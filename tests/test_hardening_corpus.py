"""Every kind of file the CLI reads, malformed in every way we know of: an ``error:`` line, never a traceback.

Grow :data:`CORPUS` with every new reader: each entry makes one bad file (or folder) and
the command line that reads it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.survey import Survey

SMALL = Survey.small()


def _velocity(tmp: Path) -> Path:
    path = tmp / "v.npy"
    np.save(path, np.full((1, 1, SMALL.nz, SMALL.nx), 2500.0, np.float32))
    return path


def _gathers(tmp: Path, suffix: str = ".npy") -> Path:
    from fwi_plugins.data import io

    path = tmp / f"g{suffix}"
    data = np.zeros((1, SMALL.n_shots, SMALL.nt, SMALL.n_receivers), np.float32)
    return io.write_gathers(path, data, survey=SMALL)


def _openfwi_gathers(tmp: Path) -> Path:
    path = tmp / "shots.npy"
    np.save(path, np.zeros((1, 5, 1000, 70), np.float32))
    return path


def _adapter(tmp: Path) -> Path:
    from fwi_plugins.adapted import save_adapted
    from fwi_plugins.manager import FWIPluginManager

    manager = FWIPluginManager().load_all()
    spec = manager.get("backbone", "vit")
    model = spec.load()(spec.parse_options({}), shape=_openfwi_shape())
    mspec = manager.get("peft", "lora")
    adapted = mspec.load()(model, mspec.parse_options({}), targets=spec.peft_targets, head=spec.head)
    return save_adapted(adapted, tmp / "adapter")


def _openfwi_shape():
    from fwi_plugins.specs import IOShape

    return IOShape()


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _truncated(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path


def _segy_patched(tmp: Path, at: int | tuple[int, ...], value: int) -> Path:
    # Nonzero samples: zeros read the same as IBM and IEEE floats, and a small survey is
    # mappable, so only the damage itself can make the file unreadable.
    from fwi_plugins.data import io

    data = np.random.default_rng(0).standard_normal((1, SMALL.n_shots, SMALL.nt, SMALL.n_receivers))
    path = io.write_gathers(tmp / "g.sgy", data.astype(np.float32), survey=SMALL)
    raw = bytearray(path.read_bytes())
    for where in (at,) if isinstance(at, int) else at:
        raw[where:where + 2] = struct.pack(">h", value)
    path.write_bytes(bytes(raw))
    return path


def predict(input_path, *extra):
    return ["predict", "--backbone", "vit", "--input", str(input_path), "--quiet", *map(str, extra)]


def simulate_velocity(velocity):
    return ["simulate", "--velocity", str(velocity), "--survey", "small", "--out"]


# name -> (make(tmp) -> argv without --out / final path)
Case = Callable[[Path], list[str]]
CORPUS: dict[str, Case] = {
    # gathers (fwi predict --input)
    "gathers npy empty file": lambda t: predict(_write(t / "g.npy", b"")),
    "gathers npy pickled object": lambda t: predict(_write(t / "g.npy", _pickled_npy())),
    "gathers npy wrong rank": lambda t: predict(_save(t / "g.npy", np.zeros((3, 4), np.float32))),
    "gathers npy strings": lambda t: predict(_save(t / "g.npy", np.array([["a"]]))),
    "gathers npy NaN": lambda t: predict(_save(t / "g.npy", np.full((1, 5, 1000, 70), np.nan, np.float32))),
    "gathers nc garbage": lambda t: predict(_write(t / "g.nc", b"not netcdf at all")),
    "gathers nc truncated": lambda t: predict(_truncated(_gathers(t, ".nc"), 200)),
    "gathers sgy truncated header": lambda t: predict(_truncated(_gathers(t, ".sgy"), 1000)),
    "gathers sgy truncated traces": lambda t: predict(_truncated(_gathers(t, ".sgy"), 3600 + 500)),
    "gathers sgy format 99": lambda t: predict(_segy_patched(t, 3224, 99)),
    "gathers sgy IEEE declared IBM": lambda t: predict(_segy_patched(t, 3224, 1)),
    # the binary header's interval and the first trace header's (bytes 117-118), both zero
    "gathers sgy zero interval": lambda t: predict(_segy_patched(t, (3216, 3600 + 116), 0)),
    "gathers unknown suffix": lambda t: predict(_write(t / "g.txt", "1 2 3")),
    "gathers missing": lambda t: predict(t / "nope.npy"),
    "gathers off the weights' acquisition": lambda t: predict(_save(t / "g.npy", np.zeros((1, 5, 999, 70),
                                                                                        np.float32))),
    "gathers nc coordinates without time": lambda t: predict(_nc_with_coordinates(t, time=False)),
    "gathers nc coordinates in km": lambda t: predict(_nc_with_coordinates(t, units="km")),
    "gathers nc unmappable grid": lambda t: predict(_nc_with_coordinates(t), "--grid", "400x100"),
    # found by tests/test_property_predict.py: a traceback (LinAlgError), a mirrored map, a NaN not located
    "gathers nc milliseconds labelled seconds": lambda t: predict(_nc_events(t, time_factor=1000.0)),
    "gathers nc receivers reversed against coordinates": lambda t: predict(_nc_events(t, reverse=True)),
    "gathers nc one NaN mapped": lambda t: predict(_nc_events(t, nan=True)),
    "gathers sgy one NaN": lambda t: predict(_segy_nan(t)),
    "gathers npy survey of other shots": lambda t: predict(
        _save(t / "g.npy", np.zeros((1, 4, 1000, 70), np.float32)), "--survey", "openfwi"),
    # normalisation (fwi predict --normalization)
    "normalization not json": lambda t: predict(_openfwi_gathers(t), "--normalization", _write(t / "n.json", "{")),
    "normalization a list": lambda t: predict(_openfwi_gathers(t), "--normalization", _write(t / "n.json", "[1]")),
    "normalization wrong fields": lambda t: predict(_openfwi_gathers(t), "--normalization",
                                                    _write(t / "n.json", '{"vmin": "slow"}')),
    # weights (fwi predict --weights)
    "weights empty": lambda t: predict(_openfwi_gathers(t), "--weights", _write(t / "w.safetensors", b"")),
    "weights garbage": lambda t: predict(_openfwi_gathers(t), "--weights", _write(t / "w.safetensors", b"x" * 64)),
    "weights pickled": lambda t: predict(_openfwi_gathers(t), "--weights", _write(t / "w.pt", b"\x80\x04K\x01.")),
    "weights NaN": lambda t: predict(_openfwi_gathers(t), "--weights", _nan_weights(t)),
    # adapters (fwi predict --adapter)
    "adapter truncated weights": lambda t: predict(_openfwi_gathers(t), "--adapter", _adapter_with(
        t, lambda a: _truncated(a / "adapter_model.safetensors", 100))),
    "adapter config a list": lambda t: predict(_openfwi_gathers(t), "--adapter", _adapter_with(
        t, lambda a: _write(a / "adapter_config.json", "[1, 2]"))),
    "adapter config not json": lambda t: predict(_openfwi_gathers(t), "--adapter", _adapter_with(
        t, lambda a: _write(a / "adapter_config.json", "{{"))),
    "adapter pickled weights": lambda t: predict(_openfwi_gathers(t), "--adapter", _adapter_with(
        t, lambda a: (a / "adapter_model.safetensors").rename(a / "adapter_model.bin"))),
    "adapter no weights": lambda t: predict(_openfwi_gathers(t), "--adapter", _adapter_with(
        t, lambda a: (a / "adapter_model.safetensors").unlink())),
    "adapter empty folder": lambda t: predict(_openfwi_gathers(t), "--adapter", _mkdir(t / "empty")),
    # velocity (fwi simulate --velocity)
    "velocity npy negative": lambda t: [*simulate_velocity(_save(t / "v.npy", np.full((1, 1, 32, 32), -1.0,
                                                                                      np.float32))), t / "o.nc"],
    "velocity npy empty": lambda t: [*simulate_velocity(_write(t / "v.npy", b"")), t / "o.nc"],
    "velocity sgy garbage": lambda t: [*simulate_velocity(_write(t / "v.sgy", b"\0" * 5000)), t / "o.nc"],
    "velocity mat garbage": lambda t: [*simulate_velocity(_write(t / "v.mat", b"MATLAB 5.0 garbage" * 20)),
                                       t / "o.nc"],
    "velocity mat no velocity variable": lambda t: [*simulate_velocity(_savemat(
        t / "v.mat", a=np.ones((32, 32)), b=np.ones((32, 32)))), t / "o.nc"],
    "velocity mat cell array": lambda t: [*simulate_velocity(_savemat(
        t / "v.mat", vp=np.array([["x"]], dtype=object))), t / "o.nc"],
    # survey (fwi simulate --survey FILE)
    "survey nt many": lambda t: ["simulate", "--velocity", _velocity(t), "--survey",
                                 _survey_file(t, nt="many"), "--out", t / "o.nc"],
    "survey sources text": lambda t: ["simulate", "--velocity", _velocity(t), "--survey",
                                      _survey_file(t, sources="left"), "--out", t / "o.nc"],
    "survey dt huge int": lambda t: ["simulate", "--velocity", _velocity(t), "--survey",
                                     _survey_file(t, dt=10 ** 400), "--out", t / "o.nc"],
    "survey a list": lambda t: ["simulate", "--velocity", _velocity(t), "--survey",
                                _write(t / "s.json", "[1]"), "--out", t / "o.nc"],
    "survey bad toml": lambda t: ["simulate", "--velocity", _velocity(t), "--survey",
                                  _write(t / "s.toml", "nz = = 3"), "--out", t / "o.nc"],
    # cache folder (fwi simulate --cache-dir)
    "cache dir is a file": lambda t: ["simulate", "--velocity", _velocity(t), "--survey", "small",
                                      "--cache-dir", _write(t / "cache", "x"), "--out", t / "o.nc"],
    # run configuration (fwi run --config)
    "config seed 1e400": lambda t: ["run", "--config", _write(t / "c.toml", _config("seed = 1e400")),
                                    "--dry-run"],
    "config epochs text": lambda t: ["run", "--config", _write(t / "c.toml", _config('epochs = "many"')),
                                     "--dry-run"],
    "config not toml": lambda t: ["run", "--config", _write(t / "c.toml", "[[[["), "--dry-run"],
    "config json list": lambda t: ["run", "--config", _write(t / "c.json", "[]"), "--dry-run"],
    "config binary": lambda t: ["run", "--config", _write(t / "c.toml", b"\xff\xfe\x00garbage"), "--dry-run"],
    # evaluate (fwi evaluate --predicted/--truth)
    "evaluate truth garbage": lambda t: ["evaluate", "--predicted", _velocity(t), "--truth",
                                         _write(t / "truth.nc", b"\x89HDF\r\n garbage")],
}


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _savemat(path: Path, **arrays) -> Path:
    from scipy.io import savemat

    savemat(str(path), arrays)
    return path


def _nc_with_coordinates(tmp: Path, *, time: bool = True, units: str = "m") -> Path:
    import xarray as xr

    coords = {"source_x": ("shot", np.arange(7) * 150.0, {"units": units}),
              "receiver_x": ("receiver", np.arange(100) * 10.0, {"units": units})}
    if time:
        coords["time"] = ("time", np.arange(1000) * 0.001, {"units": "s"})
    ds = xr.Dataset({"gathers": (("sample", "shot", "time", "receiver"), np.zeros((1, 7, 1000, 100), np.float32))},
                    coords=coords)
    path = tmp / "g.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def _events(shots: int, nt: int, receivers: int, dt: float) -> np.ndarray:
    """Direct-wave-like events, earliest at each shot's source (shot s at x = s * 150 m, receivers every 10 m)."""
    t = np.arange(nt)[:, None] * dt
    x = np.arange(receivers)[None, :] * 10.0
    return np.stack([np.exp(-((t - 0.1 - np.abs(x - s * 150.0) / 2000.0) / 0.01) ** 2)
                     for s in range(shots)])[None].astype(np.float32)


def _nc_events(tmp: Path, *, time_factor: float = 1.0, reverse: bool = False, nan: bool = False) -> Path:
    import xarray as xr

    gathers = _events(7, 1000, 100, 0.001)
    if reverse:
        gathers = np.ascontiguousarray(gathers[..., ::-1])
    if nan:
        gathers[0, 3, 500, 40] = np.nan
    coords = {"source_x": ("shot", np.arange(7) * 150.0, {"units": "m"}),
              "receiver_x": ("receiver", np.arange(100) * 10.0, {"units": "m"}),
              "time": ("time", np.arange(1000) * 0.001 * time_factor, {"units": "s"})}
    path = tmp / "g.nc"
    xr.Dataset({"gathers": (("sample", "shot", "time", "receiver"), gathers)}, coords=coords).to_netcdf(
        path, engine="h5netcdf")
    return path


def _segy_nan(tmp: Path) -> Path:
    import segyio

    from fwi_plugins.data import io

    survey = Survey(nz=70, nx=100, dx=10.0, nt=1000, dt=0.001, sources=tuple((0.0, s * 15.0) for s in range(7)),
                    receivers=tuple((0.0, float(x)) for x in range(100)))
    path = io.write_gathers(tmp / "g.sgy", _events(7, 1000, 100, 0.001), survey=survey)
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        trace = f.trace[5].copy()
        trace[10] = np.nan
        f.trace[5] = trace
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pickled_npy() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _nan_weights(tmp: Path) -> Path:
    from safetensors.torch import load_file, save_file

    from fwi_plugins.manager import FWIPluginManager
    from fwi_plugins.weights import resolve_pretrained

    spec = FWIPluginManager().load_all().get("backbone", "vit")
    from safetensors import safe_open

    source = str(resolve_pretrained(spec, "default"))
    tensors = load_file(source)
    with safe_open(source, framework="pt") as handle:
        metadata = handle.metadata()
    first = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[first] = tensors[first].clone().fill_(float("nan"))
    path = tmp / "nan.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def _adapter_with(tmp: Path, damage: Callable[[Path], object]) -> Path:
    folder = _adapter(tmp)
    damage(folder)
    return folder


def _survey_file(tmp: Path, **fields) -> Path:
    data = SMALL.to_dict()
    data.update(fields)
    return _write(tmp / "s.json", json.dumps(data))


def _config(line: str) -> str:
    return ('command = "run"\nbackbone = "vit"\npeft = "lora"\nphysics = "deepwave"\ndataset = "flatvel-a"\n'
            f"[options]\n{line}\n")


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_input_is_an_error_line_not_a_traceback(tmp_path, name):
    argv = [str(a) for a in CORPUS[name](tmp_path)]
    if argv[0] == "predict":
        argv += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, argv)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code not in (0, None), f"{name}: exit 0\n{output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{name}: {type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in output, output
    assert "error:" in output.lower(), f"{name}:\n{output}"
    assert not (tmp_path / "out").exists(), f"{name}: left an output folder"
