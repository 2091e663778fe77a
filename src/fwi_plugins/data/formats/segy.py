"""SEG-Y files (segyio, IEEE float32, format 5) of velocity models and shot gathers.

Gathers: one trace per receiver per shot, FFID (field record) numbering shots, trace number
the receiver, source and receiver positions in the trace headers and the sample interval in
microseconds in the binary header. Velocity models: one trace per x column, depth as the
sample axis (the interval field then holds the depth step in millimetres, as depth-domain
SEG-Y does).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...survey import Survey
from .segy_headers import (SEGY_MARK, open_segy, read_traces, sample_interval, scaled, segyio_module, text_count,
                           text_fields, text_header, text_number, write_segy)

__all__ = ["read_segy_gathers", "read_segy_velocity", "write_segy_gathers", "write_segy_velocity"]


def write_segy_velocity(path: Path, velocity: np.ndarray, dx: float, meta: Mapping[str, Any],
                         origin: float = 0.0) -> None:
    segyio = segyio_module()
    TF = segyio.TraceField
    n, _, nz, nx = velocity.shape
    interval = int(round(dx * 1000))  # depth step in millimetres in the "microseconds" field
    traces = velocity[:, 0].transpose(0, 2, 1).reshape(n * nx, nz)
    idx = np.arange(n * nx)
    model, col = idx // nx, idx % nx
    headers = {
        TF.TRACE_SEQUENCE_LINE: idx + 1, TF.TRACE_SEQUENCE_FILE: idx + 1,
        TF.FieldRecord: model + 1, TF.TraceNumber: col + 1, TF.CDP: col + 1,
        TF.SourceGroupScalar: np.full(n * nx, -100),
        TF.CDP_X: np.round((origin + col * dx) * 100), TF.GroupX: np.round((origin + col * dx) * 100),
        TF.TRACE_SAMPLE_COUNT: np.full(n * nx, nz), TF.TRACE_SAMPLE_INTERVAL: np.full(n * nx, interval),
    }
    text = text_header([
        f"{SEGY_MARK} VELOCITY MODEL KIND=velocity UNITS=m/s DOMAIN=depth",
        "ONE TRACE PER X COLUMN; FFID = MODEL NUMBER; TRACE NUMBER = COLUMN",
        "SAMPLE INTERVAL FIELD = DEPTH STEP IN MILLIMETRES; IEEE FLOAT32",
        f"SAMPLES={n} NZ={nz} NX={nx} DX={dx:g}" + (f" X0={origin:g}" if origin else ""),
        f"GENERATOR={meta.get('generator', 'unknown')} SEED={meta.get('seed', '-')}",
        f"VERSIONS {' '.join(f'{k}={v}' for k, v in meta.get('versions', {}).items())}",
    ])
    write_segy(path, traces, interval, text, headers)


def read_segy_velocity(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    segyio = segyio_module()
    with open_segy(path) as f:
        interval = sample_interval(f, path)
        fields = text_fields(f.text[0].decode("ascii", "replace"))
        traces, assumed = read_traces(f, path)
        ffid = np.asarray(f.attributes(segyio.TraceField.FieldRecord)[:])
    text_dx = text_number(fields, "DX", path)
    if text_dx is not None and abs(text_dx * 1000 - interval) > max(1.0, 1e-5 * interval):
        raise DataError(f"{path}: headers disagree: the binary header's sample interval is {interval} "
                        f"(depth step {interval / 1000:g} m) but the text header says DX={fields['DX']} m")
    nz = traces.shape[1]
    models = list(dict.fromkeys(ffid.tolist()))
    if len(models) <= 1:
        n, nx = 1, traces.shape[0]
    else:
        counts = {m: int(np.count_nonzero(ffid == m)) for m in models}
        if len(set(counts.values())) != 1:
            raise DataError(f"{path}: models (FFIDs) have different numbers of columns {sorted(set(counts.values()))}; "
                            f"expected every model on the same grid")
        n, nx = len(models), traces.shape[0] // len(models)
        order = np.argsort(np.searchsorted(np.asarray(models), ffid) if sorted(models) == models else
                           np.array([models.index(m) for m in ffid]), kind="stable")
        traces = traces[order]
    for key, actual in (("NZ", nz), ("NX", nx), ("SAMPLES", n)):
        if key in fields and fields[key].isdigit() and int(fields[key]) != actual:
            raise DataError(f"{path}: headers disagree with the data: the text header says {key}={fields[key]} "
                            f"but the traces give {actual}")
    velocity = traces.reshape(n, nx, nz).transpose(0, 2, 1)[:, None]
    attrs: dict[str, Any] = {"dx": text_dx or interval / 1000.0, "sample_format": assumed}
    return np.ascontiguousarray(velocity), attrs


def write_segy_gathers(path: Path, gathers: np.ndarray, survey: Survey, meta: Mapping[str, Any]) -> None:
    segyio = segyio_module()
    TF = segyio.TraceField
    n, s, t, r = gathers.shape
    interval = survey.dt * 1e6
    if abs(interval - round(interval)) > 1e-6 * interval or round(interval) > 65535:
        raise DataError(f"writing {path}: SEG-Y stores the sample interval as whole microseconds up to 65535; "
                        f"dt = {survey.dt:g} s cannot be written exactly")
    interval = int(round(interval))
    traces = gathers.transpose(0, 1, 3, 2).reshape(n * s * r, t)
    idx = np.arange(n * s * r)
    shot_global, rec = idx // r, idx % r
    shot = shot_global % s
    src = np.asarray(survey.sources) * survey.dx
    recs = np.asarray(survey.receivers) * survey.dx
    count = n * s * r
    headers = {
        TF.TRACE_SEQUENCE_LINE: idx + 1, TF.TRACE_SEQUENCE_FILE: idx + 1,
        TF.FieldRecord: shot_global + 1, TF.TraceNumber: rec + 1, TF.EnergySourcePoint: shot + 1,
        TF.CDP: shot_global // s + 1,
        TF.SourceGroupScalar: np.full(count, -100), TF.ElevationScalar: np.full(count, -100),
        TF.SourceX: np.round(src[shot, 1] * 100), TF.GroupX: np.round(recs[rec, 1] * 100),
        TF.SourceDepth: np.round(src[shot, 0] * 100),
        # Elevation is positive upwards, the survey's z is depth.
        TF.ReceiverGroupElevation: np.round(-recs[rec, 0] * 100),
        TF.offset: np.round(recs[rec, 1] - src[shot, 1]),
        TF.TRACE_SAMPLE_COUNT: np.full(count, t), TF.TRACE_SAMPLE_INTERVAL: np.full(count, interval),
    }
    text = text_header([
        f"{SEGY_MARK} SHOT GATHERS KIND=gathers",
        "FFID = SHOT NUMBER (ALL SAMPLES); TRACE NUMBER = RECEIVER; CDP = SAMPLE NUMBER",
        "ENERGY SOURCE POINT = SHOT WITHIN SAMPLE; COORDINATES IN M, SCALAR -100",
        f"SAMPLES={n} SHOTS={s} RECEIVERS={r} NT={t} DT={survey.dt:g}",
        f"NZ={survey.nz} NX={survey.nx} DX={survey.dx:g} F0={survey.peak_freq:g} PML={survey.pml_width}",
        f"VMIN={survey.vmin:g} VMAX={survey.vmax:g}"
        + (f" DELAY={survey.wavelet_delay:g}" if survey.wavelet_delay is not None else ""),
        f"GENERATOR={meta.get('generator', 'unknown')} SEED={meta.get('seed', '-')}",
        f"VERSIONS {' '.join(f'{k}={v}' for k, v in meta.get('versions', {}).items())}",
    ])
    write_segy(path, traces, interval, text, headers)


def read_segy_gathers(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    segyio = segyio_module()
    TF = segyio.TraceField
    with open_segy(path) as f:
        interval = sample_interval(f, path)
        fields = text_fields(f.text[0].decode("ascii", "replace"))
        traces, assumed = read_traces(f, path)
        head = {key: np.asarray(f.attributes(key)[:]) for key in (
            TF.FieldRecord, TF.SourceGroupScalar, TF.ElevationScalar, TF.SourceX, TF.GroupX,
            TF.SourceDepth, TF.ReceiverGroupElevation, TF.offset)}
    text_dt = text_number(fields, "DT", path)
    if text_dt is not None and abs(text_dt * 1e6 - interval) > max(0.5, 1e-5 * interval):
        raise DataError(f"{path}: headers disagree: the binary header's sample interval is {interval} "
                        f"microseconds but the text header says DT={fields['DT']} s")
    nt = traces.shape[1]
    ffid = head[TF.FieldRecord]
    shots, n_samples, n_shots, n_rec = _shot_layout(ffid, traces.shape, fields, path)
    # Traces grouped by shot in order of first appearance, file order kept within a shot.
    rank = {sh: i for i, sh in enumerate(shots)}
    order = np.argsort(np.array([rank[v] for v in ffid.tolist()]), kind="stable")
    traces = traces[order]
    xy_scalar = int(head[TF.SourceGroupScalar][0])
    z_scalar = int(head[TF.ElevationScalar][0])
    _check_offsets(head[TF.offset], scaled(head[TF.SourceX], xy_scalar), scaled(head[TF.GroupX], xy_scalar),
                   xy_scalar, path)
    src_x = scaled(head[TF.SourceX][order], xy_scalar).reshape(-1, n_rec)
    rec_x = scaled(head[TF.GroupX][order], xy_scalar).reshape(-1, n_rec)
    src_z = scaled(head[TF.SourceDepth][order], z_scalar).reshape(-1, n_rec)
    rec_z = -scaled(head[TF.ReceiverGroupElevation][order], z_scalar).reshape(-1, n_rec)
    if not np.allclose(rec_x, rec_x[:1]):
        raise DataError(f"{path}: receiver positions (GroupX) differ between shots; the gathers layout "
                        f"(shot, time, receiver) needs one receiver line shared by every shot")
    if not np.allclose(src_x, src_x[:, :1]):
        raise DataError(f"{path}: headers disagree: traces of one FFID give different source positions (SourceX)")
    per_sample_src = src_x[:, 0].reshape(n_samples, n_shots)
    gathers = traces.reshape(n_samples, n_shots, n_rec, nt).transpose(0, 1, 3, 2)
    dt = interval * 1e-6
    attrs: dict[str, Any] = {
        "dt": dt, "nt": nt, "sample_format": assumed,
        "source_x": per_sample_src[0].tolist(), "source_z": src_z[:n_shots, 0].tolist(),
        "receiver_x": rec_x[0].tolist(), "receiver_z": rec_z[0].tolist(),
    }
    survey = _survey_from_segy(fields, attrs, path)
    if survey is not None:
        attrs["survey"] = survey.to_dict()
        attrs["origin_x"] = 0.0 if fields else float(min(min(attrs["receiver_x"]), min(attrs["source_x"])))
        if text_count(fields, "NZ", path) is None:
            attrs["grid_depth"] = "assumed"
    return np.ascontiguousarray(gathers), attrs


def _check_offsets(offset: np.ndarray, source_x: np.ndarray, group_x: np.ndarray, scalar: int,
                   path: Path) -> None:
    """Refuse source and receiver positions that contradict a filled offset header (bytes 37-40).

    The offset is ``GroupX - SourceX``; files differ in whether it is signed, unsigned or
    under the coordinate scalar, so any one reading that holds for every trace will do.
    Offsets are whole units and coordinates rounded, hence a unit of slack.
    """
    if not np.any(offset):
        return  # not filled in
    span = group_x - source_x
    tolerance = 1.0 + 1e-3 * np.abs(span)
    signed = offset.astype(np.float64)
    readings = {"signed": (span, signed), "unsigned": (np.abs(span), signed), "scaled": (span, scaled(offset, scalar))}
    wrong = {name: np.flatnonzero(np.abs(want - got) > tolerance) for name, (want, got) in readings.items()}
    if any(bad.size == 0 for bad in wrong.values()):
        return
    bad = min(wrong.values(), key=len)
    i = int(bad[0])
    raise DataError(f"{path}: headers disagree in {bad.size} of {offset.size} traces: trace {i + 1} has "
                    f"GroupX - SourceX = {group_x[i]:g} - {source_x[i]:g} = {span[i]:g} but its offset header "
                    f"(bytes 37-40) says {int(offset[i])}; the source or receiver positions are wrong (for "
                    f"example SourceX running the other way), and the survey cannot be trusted")


def _shot_layout(ffid: np.ndarray, traces_shape: tuple[int, ...], fields: Mapping[str, str],
                 path: Path) -> tuple[list[Any], int, int, int]:
    """The shots (FFIDs, in order of first appearance) and ``(samples, shots per sample, receivers)``.

    Every shot must have the same number of traces; a text header written here gives the
    sample count and must agree with the data.
    """
    ntr, nt = traces_shape
    shots = list(dict.fromkeys(ffid.tolist()))
    counts = {sh: int(np.count_nonzero(ffid == sh)) for sh in shots}
    if len(set(counts.values())) != 1:
        raise DataError(f"{path}: shots (FFIDs) have different numbers of traces {sorted(set(counts.values()))}; "
                        f"expected one trace per receiver in every shot")
    n_rec = ntr // len(shots)
    n_samples, n_shots = 1, len(shots)
    if fields:
        want = {k: fields.get(k) for k in ("SAMPLES", "SHOTS", "RECEIVERS", "NT")}
        if all(v and v.isdigit() for v in want.values()):
            ns, ss, rr, tt = (int(want[k]) for k in ("SAMPLES", "SHOTS", "RECEIVERS", "NT"))  # type: ignore[arg-type]
            if ns * ss * rr != ntr or tt != nt or rr != n_rec:
                raise DataError(f"{path}: headers disagree with the data: the text header says {ns} samples x "
                                f"{ss} shots x {rr} receivers x {tt} time samples, the file holds {ntr} traces "
                                f"of {nt} samples in {len(shots)} FFIDs")
            n_samples, n_shots = ns, ss
    return shots, n_samples, n_shots, n_rec


def _survey_from_segy(fields: Mapping[str, str], attrs: Mapping[str, Any], path: Path) -> Survey | None:
    """Rebuild the survey from trace-header geometry (and the text header written here, if present)."""
    rec_x = np.asarray(attrs["receiver_x"])
    text_dx = text_number(fields, "DX", path)
    if text_dx is not None:
        dx = text_dx
    else:
        steps = np.diff(np.unique(rec_x))
        if steps.size == 0 or steps.min() <= 0:
            return None
        dx = float(steps.min())
    # Foreign coordinates (e.g. UTM eastings) get the grid's origin at the first position.
    x0 = 0.0 if fields else float(min(rec_x.min(), min(attrs["source_x"])))
    to_grid = lambda v: (np.asarray(v, dtype=np.float64) - x0) / dx  # noqa: E731
    sx, rx = to_grid(attrs["source_x"]), to_grid(rec_x)
    sz = np.asarray(attrs["source_z"]) / dx
    rz = np.asarray(attrs["receiver_z"]) / dx
    nx = text_count(fields, "NX", path) or int(np.ceil(max(sx.max(), rx.max()))) + 1
    nz = text_count(fields, "NZ", path) or nx
    kwargs: dict[str, Any] = dict(
        nz=nz, nx=nx, dx=dx, nt=int(attrs["nt"]), dt=float(attrs["dt"]),
        sources=tuple(zip(sz.tolist(), sx.tolist())), receivers=tuple(zip(rz.tolist(), rx.tolist())))
    for key, name, conv in (("F0", "peak_freq", float), ("PML", "pml_width", int), ("VMIN", "vmin", float),
                            ("VMAX", "vmax", float), ("DELAY", "wavelet_delay", float)):
        if key in fields:
            try:
                kwargs[name] = conv(fields[key])
            except ValueError:
                raise DataError(f"{path}: the text header's {key}={fields[key]!r} is not a number") from None
    try:
        return Survey(**kwargs)
    except Exception as exc:
        raise DataError(f"{path}: the trace-header geometry does not form a valid survey ({exc})") from None
