"""Registration of the built-in datasets: generated families, OpenFWI files and user files.

Only option dataclasses are imported here; generators and readers load when a dataset is built.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..data.options import (ChannelsOptions, CurveFaultOptions, CurveOptions, FaultOptions, FilesOptions,
                            LayerOptions, OpenFWIOptions, SaltDomeOptions, SaltOptions, SmoothOptions,
                            SteepBedsOptions, ThrustOptions)
from ..hookspecs import hookimpl
from ..specs import DatasetSpec

# name -> (options, description); the generators live in fwi_plugins.data.families (and .geology).
_FAMILIES = (
    ("flatvel-a", LayerOptions, "generated flat layers (3-8), velocity increasing with depth"),
    ("flatvel-b", LayerOptions, "generated flat layers (5-12), large contrasts and inversions"),
    ("curvevel-a", CurveOptions, "generated folded layers (3-8), velocity increasing with depth"),
    ("curvevel-b", CurveOptions, "generated folded layers (5-12), large contrasts and inversions"),
    ("flatfault-a", FaultOptions, "generated flat layers cut by a fault"),
    ("flatfault-b", FaultOptions, "generated flat layers with inversions cut by up to two faults"),
    ("curvefault-a", CurveFaultOptions, "generated folded layers cut by a fault"),
    ("curvefault-b", CurveFaultOptions, "generated folded layers with inversions cut by up to two faults"),
    ("salt", SaltOptions, "generated salt bodies in folded sediments (beyond OpenFWI: out of distribution)"),
    ("smooth", SmoothOptions, "generated smooth random media on a depth trend (beyond OpenFWI)"),
    ("thrust", ThrustOptions, "generated folded thin beds with thrusts repeating the section (beyond OpenFWI)"),
    ("steep-beds", SteepBedsOptions, "generated steep thin beds under an angular unconformity (beyond OpenFWI)"),
    ("salt-dome", SaltDomeOptions, "generated salt diapir with overhang or tongue and dragged beds (beyond OpenFWI)"),
    ("channels", ChannelsOptions, "generated thin beds with fast and slow channels and lenses (beyond OpenFWI)"),
)


@hookimpl
def fwi_datasets() -> Iterator[DatasetSpec]:
    for name, options, description in _FAMILIES:
        yield DatasetSpec(name=name, factory=f"fwi_plugins.data.families:build_{name.replace('-', '_')}",
                          description=description, options=options,
                          example_options={"n_train": 2, "n_val": 1, "n_test": 1, "nz": 16, "nx": 16,
                                           "survey": "small"})
    yield DatasetSpec(name="openfwi", factory="fwi_plugins.data.openfwi:build_openfwi",
                      description="OpenFWI-layout files (model*.npy / vmodel*.npy, data*.npy), folders or .zip",
                      options=OpenFWIOptions,
                      example_options={"path": "example", "n_train": 2, "n_val": 1, "n_test": 1})
    yield DatasetSpec(name="files", factory="fwi_plugins.data.files:build_files",
                      description="velocity and/or gathers from .npy, .nc, .zarr or SEG-Y files",
                      options=FilesOptions, example_options={"velocity": "example"})
