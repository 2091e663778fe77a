"""SEG-Y headers and traces: the textual header this project writes, and the checks every read makes.

A file is opened with ``ignore_geometry=True``; the sample interval comes from the binary
header (checked against the trace headers), the sample format code is checked against what
the samples hold, and the ``KEY=VALUE`` fields of a text header written here are parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_path
from ...errors import DataError

__all__ = ["SEGY_FORMATS", "SEGY_MARK", "byte_order", "open_segy", "read_traces", "sample_interval", "scaled",
           "segyio_module", "text_count", "text_fields", "text_header", "text_number", "write_segy"]

SEGY_MARK = "FWI-PLUGINS"


def segyio_module() -> Any:
    import segyio

    return segyio


def text_header(lines: list[str]) -> str:
    """A 3200-byte textual header: 40 lines of 80 characters, ``C01``..``C40``."""
    out = []
    for i in range(40):
        body = lines[i] if i < len(lines) else ""
        out.append(f"C{i + 1:02d} {body}"[:80].ljust(80))
    return "".join(out)


def text_fields(text: str) -> dict[str, str]:
    """``KEY=VALUE`` tokens of the text header written here (empty for foreign files)."""
    if SEGY_MARK not in text:
        return {}
    fields = {}
    for token in text.replace("\x00", " ").split():
        key, sep, value = token.partition("=")
        if sep and key:
            fields[key.upper()] = value
    return fields


def byte_order(head: bytes, path: Path) -> str:
    """``"big"`` (the standard's) or ``"little"``: the order in which the binary header's format code is one.

    A code of 1..16 read in the other order is 256 or more, so the two cannot be confused.

    Raises:
        DataError: the format code is none this reader decodes in either order.
    """
    code = int.from_bytes(head[3224:3226], "big", signed=True)
    if code not in SEGY_FORMATS and int.from_bytes(head[3224:3226], "little", signed=True) in SEGY_FORMATS:
        return "little"
    _check_format_code(code, path)  # segyio would fall back to IBM floats for an unknown code
    return "big"


def open_segy(path: Path) -> Any:
    """The file opened with segyio in its byte order (see :func:`byte_order`), geometry ignored."""
    segyio = segyio_module()
    with path.open("rb") as handle:
        head = handle.read(3600)
    endian = byte_order(head, path) if len(head) == 3600 else "big"
    try:
        return segyio.open(str(path), "r", ignore_geometry=True, endian=endian)
    except Exception as exc:  # segyio raises RuntimeError/OSError/ValueError for damaged files
        size = path.stat().st_size
        hint = " (a SEG-Y file needs at least 3600 header bytes)" if size < 3600 else ""
        raise DataError(f"{path}: not a readable SEG-Y file, truncated or corrupt "
                        f"({type(exc).__name__}: {exc}){hint}") from None


def sample_interval(f: Any, path: Path) -> int:
    segyio = segyio_module()
    binary = int(f.bin[segyio.BinField.Interval])
    trace = int(f.header[0][segyio.TraceField.TRACE_SAMPLE_INTERVAL]) if f.tracecount else 0
    if binary and trace and binary != trace:
        raise DataError(f"{path}: headers disagree: the binary header's sample interval is {binary} but "
                        f"the trace headers say {trace}")
    interval = binary or trace
    if interval <= 0:
        raise DataError(f"{path}: no sample interval in the binary header (expected microseconds > 0)")
    samples = int(f.bin[segyio.BinField.Samples])
    if samples and samples != len(f.samples):
        raise DataError(f"{path}: headers disagree: the binary header says {samples} samples per trace, "
                        f"the traces hold {len(f.samples)}")
    return interval


# Sample format codes of the binary header (bytes 3225-3226) that segyio decodes.
SEGY_FORMATS = {1: "4-byte IBM float", 2: "4-byte signed integer", 3: "2-byte signed integer",
                5: "4-byte IEEE float", 8: "1-byte signed integer", 10: "4-byte unsigned integer",
                11: "2-byte unsigned integer", 16: "1-byte unsigned integer"}


def _sample_format(f: Any, path: Path) -> int:
    """The binary header's sample format code, checked against what the samples hold.

    segyio falls back to IBM floats for a code it does not know, and IEEE floats read as
    IBM decode to numbers of the right order of magnitude: both would give wrong data
    without a word.
    """
    segyio = segyio_module()
    code = int(f.bin[segyio.BinField.Format])
    _check_format_code(code, path)
    if code == 1 and f.tracecount:
        _check_ibm(f, path)
    return code


def _check_format_code(code: int, path: Path) -> None:
    if code not in SEGY_FORMATS:
        known = ", ".join(f"{k} ({v})" for k, v in SEGY_FORMATS.items())
        raise DataError(f"{path}: the binary header's sample format code (bytes 3225-3226) is {code}, which is "
                        f"not a sample format this reader decodes; expected one of {known}")


def _check_ibm(f: Any, path: Path) -> None:
    """Refuse IBM-declared samples that are not IBM floats (most often IEEE floats).

    A nonzero IBM float written by any encoder is normalised: the top hexadecimal digit of
    its fraction is not zero. IEEE floats read as IBM have that digit zero in about one
    sample in sixteen.
    """
    ns = len(f.samples)
    offset = 3600 + 3200 * max(int(f.ext_headers), 0)
    order = "<" if str(getattr(f, "endian", "big")) in ("little", "lsb") else ">"
    try:
        words = np.memmap(path, dtype=f"{order}u4", mode="r", offset=offset, shape=(f.tracecount, 60 + ns))
    except (ValueError, OSError):
        return  # the trace reader reports a truncated file
    rows = np.unique(np.linspace(0, f.tracecount - 1, min(f.tracecount, 2000)).astype(np.int64))
    samples = np.asarray(words[rows, 60:])
    del words
    nonzero = (samples & 0x7FFFFFFF) != 0
    unnormalised = int(np.count_nonzero(nonzero & (((samples >> 20) & 0xF) == 0)))
    total = int(np.count_nonzero(nonzero))
    if unnormalised > max(2, 0.01 * total):
        as_ieee = samples.view(f"{order}f4")[nonzero]
        finite = np.isfinite(as_ieee)
        hint = ""
        if finite.all():
            hint = (f"; read as IEEE floats (format 5) they span {float(as_ieee.min()):.3g}.."
                    f"{float(as_ieee.max()):.3g}")
        raise DataError(f"{path}: the binary header declares IBM floats (sample format 1), but "
                        f"{100 * unnormalised / total:.1f}% of the nonzero samples are not valid IBM floats"
                        f"{hint}. The format code is probably wrong: set it to 5 if the traces hold IEEE "
                        f"float32")


def scaled(values: np.ndarray, scalar: int) -> np.ndarray:
    """Apply a SEG-Y coordinate scalar (negative divides, positive multiplies, 0 means 1)."""
    values = values.astype(np.float64)
    if scalar < 0:
        return values / -scalar
    if scalar > 0:
        return values * scalar
    return values


def read_traces(f: Any, path: Path) -> tuple[np.ndarray, str]:
    """The traces as float32 and the sample format they were decoded as, in words."""
    code = _sample_format(f, path)
    assumed = f"sample format {code} ({SEGY_FORMATS[code]})"
    try:
        data = f.trace.raw[:]
    except Exception as exc:
        raise DataError(f"{path}: cannot read the traces as {assumed}, the file is truncated or corrupt "
                        f"({exc})") from None
    return np.asarray(data, dtype=np.float32).reshape(f.tracecount, len(f.samples)), assumed


def text_count(fields: Mapping[str, str], key: str, path: Path) -> int | None:
    """A positive whole number of the text header written here, or ``None`` if not given."""
    if key not in fields:
        return None
    if not fields[key].isdigit() or int(fields[key]) <= 0:
        raise DataError(f"{path}: the text header's {key}={fields[key]!r} is not a positive whole number")
    return int(fields[key])


def text_number(fields: Mapping[str, str], key: str, path: Path) -> float | None:
    """A number of the text header written here, or ``None`` if the header does not give it."""
    if key not in fields:
        return None
    try:
        value = float(fields[key])
    except ValueError:
        raise DataError(f"{path}: the text header's {key}={fields[key]!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise DataError(f"{path}: the text header's {key}={fields[key]} is not a positive number")
    return value


def write_segy(path: Path, traces: np.ndarray, interval: int, text: str,
                headers: dict[Any, np.ndarray]) -> None:
    segyio = segyio_module()
    spec = segyio.spec()
    spec.format = 5  # IEEE float32: lossless, unlike segyio's default IBM floats
    spec.samples = list(range(traces.shape[1]))
    spec.tracecount = traces.shape[0]
    spec.sorting = 2
    spec.endian = "big"
    with atomic_path(path) as tmp:
        with segyio.create(str(tmp), spec) as f:
            f.text[0] = text.encode("ascii", "replace")
            f.bin.update({segyio.BinField.Interval: interval, segyio.BinField.Samples: traces.shape[1],
                          segyio.BinField.Format: 5})
            for i in range(traces.shape[0]):
                f.header[i] = {key: int(vals[i]) for key, vals in headers.items()}
                f.trace[i] = traces[i]

