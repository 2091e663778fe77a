"""SEG-Y that would decode to wrong numbers is refused, naming the header field and what was assumed."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fwi_plugins.data import io
from fwi_plugins.errors import DataError
from fwi_plugins.survey import Survey

FORMAT_AT = 3224  # binary header bytes 3225-3226, big-endian
INTERVAL_AT = 3216  # binary header bytes 3217-3218
TRACE_INTERVAL_AT = 116  # trace header bytes 117-118


@pytest.fixture
def survey():
    return Survey.small()


@pytest.fixture
def gathers(survey):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(2, survey.n_shots, survey.nt, survey.n_receivers)) * 1e-3).astype(np.float32)


def _patch(path, at, value):
    raw = bytearray(path.read_bytes())
    raw[at:at + 2] = struct.pack(">h", value)
    path.write_bytes(bytes(raw))


def _patch_interval(path, value, traces, samples):
    raw = bytearray(path.read_bytes())
    raw[INTERVAL_AT:INTERVAL_AT + 2] = struct.pack(">h", value)
    for i in range(traces):
        at = 3600 + i * (240 + 4 * samples) + TRACE_INTERVAL_AT
        raw[at:at + 2] = struct.pack(">h", value)
    path.write_bytes(bytes(raw))


def test_ieee_traces_declared_ibm_are_refused(tmp_path, gathers, survey):
    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    _patch(path, FORMAT_AT, 1)
    with pytest.raises(DataError, match=r"declares IBM floats \(sample format 1\).*set it to 5"):
        io.read_gathers(path)


def test_ieee_velocity_declared_ibm_is_refused(tmp_path):
    velocity = np.linspace(1500, 4500, 32 * 32, dtype=np.float32).reshape(1, 1, 32, 32)
    path = io.write_velocity(tmp_path / "v.sgy", velocity, dx=10.0)
    _patch(path, FORMAT_AT, 1)
    with pytest.raises(DataError, match="sample format 1"):
        io.read_velocity(path)


@pytest.mark.parametrize("code", [0, 4, 7, 99, -1])
def test_unknown_format_codes_are_refused(tmp_path, gathers, survey, code):
    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    _patch(path, FORMAT_AT, code)
    with pytest.raises(DataError, match=rf"sample format code \(bytes 3225-3226\) is {code}\b"):
        io.read_gathers(path)


def test_genuine_ibm_floats_read_and_say_so(tmp_path, gathers):
    import segyio

    g = gathers[0]
    s, t, r = g.shape
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount, spec.sorting = 1, list(range(t)), s * r, 2
    path = tmp_path / "ibm.sgy"
    with segyio.create(str(path), spec) as f:
        f.bin.update({segyio.BinField.Interval: 2000, segyio.BinField.Format: 1})
        for i in range(s * r):
            f.header[i] = {segyio.TraceField.FieldRecord: i // r + 1, segyio.TraceField.TraceNumber: i % r + 1,
                           segyio.TraceField.GroupX: 1000 * (i % r), segyio.TraceField.SourceX: 5000 * (i // r),
                           segyio.TraceField.TRACE_SAMPLE_INTERVAL: 2000}
            f.trace[i] = g[i // r, :, i % r]
    arr, attrs = io.read_gathers(path)
    assert attrs["sample_format"].startswith("sample format 1 (4-byte IBM float)")
    np.testing.assert_allclose(arr[0], g, rtol=1e-5, atol=1e-12)


def test_ieee_reads_say_which_format(tmp_path, gathers, survey):
    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    _, attrs = io.read_gathers(path)
    assert attrs["sample_format"] == "sample format 5 (4-byte IEEE float)"


def test_binary_interval_disagreeing_with_the_text_header_is_refused(tmp_path, gathers, survey):
    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    n, s, t, r = gathers.shape
    _patch_interval(path, 4000, n * s * r, t)
    with pytest.raises(DataError, match=r"binary header's sample interval is 4000 microseconds.*DT=0\.002"):
        io.read_gathers(path)


def test_velocity_depth_step_disagreeing_with_the_text_header_is_refused(tmp_path):
    velocity = np.full((1, 1, 8, 6), 2000.0, dtype=np.float32)
    path = io.write_velocity(tmp_path / "v.sgy", velocity, dx=10.0)
    _patch_interval(path, 25000, 6, 8)
    with pytest.raises(DataError, match=r"sample interval is 25000.*DX=10"):
        io.read_velocity(path)


@pytest.mark.parametrize(("old", "new"), [("DT=0.002", "DT=soon!!"), ("NX=32", "NX=wide"), ("F0=15", "F0=x  ")])
def test_malformed_text_header_numbers_are_refused(tmp_path, gathers, survey, old, new):
    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    raw = path.read_bytes()
    text = raw[:3200].decode("cp500")  # segyio writes the text header in EBCDIC
    assert old in text, text
    patched = text.replace(old, new, 1)[:3200]
    path.write_bytes(patched.encode("cp500") + raw[3200:])
    with pytest.raises(DataError, match="text header"):
        io.read_gathers(path)


# -- trace headers against each other ------------------------------------------------
def _foreign_line(path, *, source_x, offsets_from, n_rec=12, nt=30):
    """A file without this package's text header: positions in metres, offsets as given."""
    import segyio

    data = np.random.default_rng(3).normal(size=(len(source_x) * n_rec, nt)).astype(np.float32)
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount, spec.sorting = 5, list(range(nt)), data.shape[0], 2
    with segyio.create(str(path), spec) as f:
        f.bin.update({segyio.BinField.Interval: 2000})
        for i in range(data.shape[0]):
            s, r = divmod(i, n_rec)
            f.header[i] = {segyio.TraceField.FieldRecord: s + 1, segyio.TraceField.TraceNumber: r + 1,
                           segyio.TraceField.SourceX: int(source_x[s]), segyio.TraceField.GroupX: 10 * r,
                           segyio.TraceField.offset: int(10 * r - offsets_from[s]),
                           segyio.TraceField.SourceGroupScalar: 1}
            f.trace[i] = data[i]
    return path


def test_source_positions_running_against_the_offsets_are_refused(tmp_path):
    # SourceX decreases with the shot while the offsets (GroupX - true SourceX) say it increases.
    true_x = [0, 40, 110]
    path = _foreign_line(tmp_path / "reversed.sgy", source_x=true_x[::-1], offsets_from=true_x)
    with pytest.raises(DataError, match=r"reversed\.sgy: headers disagree in \d+ of 36 traces: trace 1 has "
                                        r"GroupX - SourceX = 0 - 110 = -110 but its offset header \(bytes "
                                        r"37-40\) says 0"):
        io.read_gathers(path)


def test_offsets_agreeing_with_the_positions_read_signed_or_unsigned(tmp_path):
    true_x = [0, 40, 110]
    _, attrs = io.read_gathers(_foreign_line(tmp_path / "ok.sgy", source_x=true_x, offsets_from=true_x))
    assert attrs["source_x"] == [0.0, 40.0, 110.0]
    import segyio

    with segyio.open(str(tmp_path / "ok.sgy"), "r+", ignore_geometry=True) as f:
        for i in range(f.tracecount):
            f.header[i][segyio.TraceField.offset] = abs(f.header[i][segyio.TraceField.offset])
    assert io.read_gathers(tmp_path / "ok.sgy")[1]["source_x"] == [0.0, 40.0, 110.0]


# -- byte order ---------------------------------------------------------------------
def _as_little_endian(src, dst):
    """The same file, every header and sample little-endian, written by segyio."""
    import segyio

    with segyio.open(str(src), ignore_geometry=True) as f:
        spec = segyio.tools.metadata(f)
        spec.endian = "little"
        with segyio.create(str(dst), spec) as g:
            g.text[0] = f.text[0]
            g.bin = f.bin
            g.header = f.header
            g.trace = f.trace
    assert struct.unpack("<h", dst.read_bytes()[FORMAT_AT:FORMAT_AT + 2])[0] == 5
    return dst


def test_little_endian_gathers_read_like_their_big_endian_twin(tmp_path, gathers, survey):
    io.write_gathers(tmp_path / "big.sgy", gathers, survey=survey)
    little = _as_little_endian(tmp_path / "big.sgy", tmp_path / "little.sgy")
    arr, attrs = io.read_gathers(little)
    np.testing.assert_array_equal(arr, gathers)
    _, big_attrs = io.read_gathers(tmp_path / "big.sgy")
    for key in ("dt", "source_x", "receiver_x", "source_z", "receiver_z", "survey", "sample_format"):
        assert attrs[key] == big_attrs[key], key
    assert io.survey_from_attrs(attrs) == survey


def test_little_endian_velocity_reads(tmp_path):
    velocity = np.random.default_rng(4).uniform(1500, 4500, (2, 1, 8, 10)).astype(np.float32)
    io.write_velocity(tmp_path / "big.sgy", velocity, dx=12.5)
    arr, attrs = io.read_velocity(_as_little_endian(tmp_path / "big.sgy", tmp_path / "little.sgy"))
    np.testing.assert_array_equal(arr, velocity)
    assert attrs["dx"] == 12.5


def test_little_endian_ieee_declared_ibm_is_still_refused(tmp_path, gathers, survey):
    io.write_gathers(tmp_path / "big.sgy", gathers, survey=survey)
    little = _as_little_endian(tmp_path / "big.sgy", tmp_path / "little.sgy")
    raw = bytearray(little.read_bytes())
    raw[FORMAT_AT:FORMAT_AT + 2] = struct.pack("<h", 1)
    little.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"declares IBM floats \(sample format 1\)"):
        io.read_gathers(little)
