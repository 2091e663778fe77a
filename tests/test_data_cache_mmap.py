"""Memory-mapped simulation cache parts: same values, same checksums, same cache, less memory.

``cached_gathers(..., mmap=True)`` returns the cache's parts as read-only memory maps read as
one array (a RowStack). Parts are still verified (shape, dtype, SHA-256) and a damaged one is
still simulated again; the checksums are those the cache has always recorded, so entries
written before memory mapping stay valid.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fwi_plugins.data.cache as cache
from fwi_plugins.data import SeismicDataset
from fwi_plugins.data.cache import CacheWarning, cached_gathers
from fwi_plugins.data.cache_key import DIGEST_CHUNK_BYTES, array_digest, cache_key, mapped_digest
from fwi_plugins.data.rows import RowStack, take_rows
from fwi_plugins.survey import Survey
from fwi_plugins.testing import LinearPhysics


class FakePhysics(LinearPhysics):
    """The linear stand-in physics, counting the models it simulates."""

    def __init__(self, survey: Survey) -> None:
        super().__init__(survey)
        self.simulated = 0

    def simulate(self, velocity):
        self.simulated += len(velocity)
        return super().simulate(velocity)


@pytest.fixture
def survey():
    return Survey.small(nz=12, nx=12, nt=30, n_sources=2)


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(cache, "PART_SIZE", 2)


def _velocity(n: int = 5, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1500, 4500, (n, 1, 12, 12)).astype(np.float32)


def _sha256_of(arr: np.ndarray) -> str:
    """The cache's checksum, written out here: SHA-256 of dtype and shape as text, then the C-order bytes."""
    arr = np.ascontiguousarray(arr)
    return hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes()).hexdigest()


def _assert_mapped(stack) -> None:
    assert isinstance(stack, RowStack)
    for part in stack.parts:
        assert isinstance(part, np.memmap), type(part)
        assert not part.flags.owndata and not part.flags.writeable


# -- the parts come back memory-mapped, with the in-memory values ------------------
def test_cached_parts_come_back_memory_mapped_with_the_in_memory_values(survey, tmp_path, small_parts):
    vel = _velocity()
    physics = FakePhysics(survey)
    in_memory = cached_gathers(vel, physics, {}, cache_dir=tmp_path, progress=False)
    assert isinstance(in_memory, np.ndarray) and physics.simulated == 5

    again = FakePhysics(survey)
    mapped = cached_gathers(vel, again, {}, cache_dir=tmp_path, progress=False, mmap=True)
    assert again.simulated == 0  # every part came from the cache, verified
    _assert_mapped(mapped)
    assert len(mapped.parts) == 3 and mapped.shape == in_memory.shape and mapped.dtype == np.float32
    np.testing.assert_array_equal(mapped[:], in_memory)
    np.testing.assert_array_equal(mapped[np.array([4, 0, 3])], in_memory[[4, 0, 3]])
    assert mapped.min() == in_memory.min() and mapped.max() == in_memory.max()


def test_a_fresh_simulation_comes_back_memory_mapped_from_its_new_parts(survey, tmp_path, small_parts):
    vel = _velocity()
    mapped = cached_gathers(vel, FakePhysics(survey), {}, cache_dir=tmp_path / "a", progress=False, mmap=True)
    _assert_mapped(mapped)
    reference = cached_gathers(vel, FakePhysics(survey), {}, cache_dir=tmp_path / "b", progress=False)
    np.testing.assert_array_equal(mapped[:], reference)


def test_no_samples_is_an_empty_stack(survey, tmp_path):
    empty = cached_gathers(_velocity(0), FakePhysics(survey), {}, cache_dir=tmp_path, progress=False, mmap=True)
    assert empty.shape == (0, survey.n_shots, survey.nt, survey.n_receivers)


# -- checksums: the ones the cache has always recorded ------------------------------
def test_checksums_are_sha256_of_the_whole_array_whatever_the_blocks(survey, tmp_path, small_parts):
    rng = np.random.default_rng(0)
    for arr in (rng.standard_normal((7, 3, 5)).astype(np.float32), rng.standard_normal((9, 4, 6)).T,
                rng.standard_normal((6, 1, 4, 4))[:, :, ::2], np.float32(2.5), rng.integers(0, 9, 13)):
        for chunk_bytes in (1, 40, DIGEST_CHUNK_BYTES):
            assert array_digest(arr, chunk_bytes=chunk_bytes) == _sha256_of(arr), (arr.shape, chunk_bytes)

    vel = _velocity()
    gathers = cached_gathers(vel, FakePhysics(survey), {}, cache_dir=tmp_path, progress=False)
    (entry,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for npy in sorted(entry.glob("part-*.npy")):
        start, stop = (int(x) for x in npy.stem.split("-")[1:])
        recorded = json.loads(npy.with_suffix(".json").read_text())["sha256"]
        assert recorded == _sha256_of(gathers[start:stop])
        mapped = np.load(npy, mmap_mode="r")
        assert mapped_digest(npy, mapped, chunk_bytes=1000) == recorded


def test_cache_keys_are_those_of_entries_already_on_disk():
    # Pinned: computed before memory mapping. A different key would orphan every cache entry
    # already simulated (hours of CPU for the pretraining corpus).
    class Pinned:
        name, version = "pinned", "1"
        survey = Survey.small(nz=12, nx=12, nt=30, n_sources=2)

    v = 1500 + np.arange(2 * 144, dtype=np.float32).reshape(2, 1, 12, 12) * 10
    assert array_digest(v) == _sha256_of(v) == "5eba3c4d07ea2e5e6a7e69465c1718aaffda126b05c085b6cf597185883d3206"
    assert cache_key({"generator": "toy", "seed": 0}, v, Pinned())[0] == "b80a8af1b3c18cf08b47199e3fac1eef"


# -- damaged parts are still found and simulated again -------------------------------
@pytest.mark.parametrize("damage", ["flip", "truncate", "no-record", "shape", "dtype"])
def test_a_damaged_part_is_detected_and_simulated_again_when_memory_mapped(survey, tmp_path, small_parts, damage):
    vel = _velocity()
    good = cached_gathers(vel, FakePhysics(survey), {}, cache_dir=tmp_path, progress=False)
    (entry,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    npy = entry / "part-0000002-0000004.npy"
    if damage == "flip":
        raw = bytearray(npy.read_bytes())
        raw[-5] ^= 0xFF
        npy.write_bytes(bytes(raw))
    elif damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:-7])
    elif damage == "no-record":
        npy.with_suffix(".json").unlink()
    elif damage == "shape":
        np.save(npy, good[2:4, :1])
    else:
        np.save(npy, good[2:4].astype(np.float64))
    physics = FakePhysics(survey)
    with pytest.warns(CacheWarning, match="part-0000002-0000004 is corrupt"):
        rebuilt = cached_gathers(vel, physics, {}, cache_dir=tmp_path, progress=False, mmap=True)
    assert physics.simulated == 2  # that part alone
    _assert_mapped(rebuilt)
    np.testing.assert_array_equal(rebuilt[:], good)
    physics = FakePhysics(survey)
    cached_gathers(vel, physics, {}, cache_dir=tmp_path, progress=False, mmap=True)
    assert physics.simulated == 0


# -- memory: verification streams the file, the map is not read ----------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak resident memory from /proc")
def test_loading_memory_mapped_keeps_the_parts_out_of_resident_memory(tmp_path):
    # 96 MiB of parts written the cache's own way; a child process loads them both ways and
    # reports how much its peak resident memory grew.
    rows, per_row = 24, (4, 1024, 256)  # 4 MiB a row, parts of 8 rows
    entry = tmp_path / "entry"
    entry.mkdir()
    rng = np.random.default_rng(0)
    for start in range(0, rows, 8):
        cache._save_part(entry, start, start + 8, rng.standard_normal((8, *per_row), dtype=np.float32))
    child = textwrap.dedent(f"""
        import sys
        import numpy as np
        import fwi_plugins.data.cache as cache
        from pathlib import Path

        def peak():
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (pytest) across exec.
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

        entry, mmap = Path(sys.argv[1]), sys.argv[2] == "mmap"
        before = peak()
        parts = [cache._load_part(entry, s, s + 8, (8, *{per_row}), mmap=mmap) for s in range(0, {rows}, 8)]
        assert all(p is not None for p in parts)
        print(peak() - before)
    """)
    grown = {}
    for how in ("mmap", "full"):
        out = subprocess.run([sys.executable, "-c", child, str(entry), how], capture_output=True, text=True,
                             check=True)
        grown[how] = int(out.stdout.strip())
    total = rows * 4 * 2**20
    assert grown["full"] >= 0.9 * total, grown
    assert grown["mmap"] <= 2 * DIGEST_CHUNK_BYTES, grown


# -- a dataset hands out memory-mapped gathers on request ----------------------------
def test_dataset_gathers_memory_mapped_fit_the_same_scale(survey, tmp_path, small_parts):
    def dataset():
        rng = np.random.default_rng(0)
        vel = {s: rng.uniform(1500, 4500, (k, 1, 12, 12)).astype(np.float32)
               for s, k in (("train", 5), ("val", 2), ("test", 0))}
        return SeismicDataset("toy", survey=survey, velocity=vel, attrs={"generator": "toy"})

    plain = dataset()
    in_memory = plain.gathers("val", FakePhysics(survey), cache_dir=tmp_path, progress=False)
    mapped_ds = dataset()
    physics = FakePhysics(survey)
    mapped = mapped_ds.gathers("val", physics, cache_dir=tmp_path, progress=False, mmap=True)
    assert physics.simulated == 0
    _assert_mapped(mapped)
    np.testing.assert_array_equal(mapped[:], in_memory)
    assert mapped_ds.normalization == plain.normalization  # fitted on the (mapped) training split
    # Asked for without mmap, the same dataset reads its gathers into one array.
    whole = mapped_ds.gathers("train")
    assert type(whole) is np.ndarray and whole.flags.writeable
    np.testing.assert_array_equal(whole, plain.gathers("train"))


# -- RowStack: rows on request, never the whole stack implicitly ---------------------
def test_row_stack_reads_rows_and_refuses_to_become_one_array():
    a, b = np.arange(12.0).reshape(3, 2, 2), np.arange(12.0, 20.0).reshape(2, 2, 2)
    whole = np.concatenate([a, b])
    stack = RowStack([RowStack([a]), None, b])
    assert len(stack.parts) == 2 and stack.shape == (5, 2, 2)
    np.testing.assert_array_equal(stack[-1], whole[-1])
    np.testing.assert_array_equal(stack[np.array([-5, 4])], whole[[-5, 4]])
    np.testing.assert_array_equal(stack[::2], whole[::2])
    with pytest.raises(IndexError, match="row 5"):
        stack[np.array([0, 5])]
    with pytest.raises(TypeError, match="slice"):
        stack[np.array([[0]])]
    with pytest.raises(TypeError, match="does not turn into one array implicitly"):
        np.asarray(stack)
    assert stack.min() == 0.0 and stack.max() == 19.0
    with pytest.raises(Exception, match="dtype"):
        RowStack([a, b.astype(np.float32)])


def test_take_rows_copies_a_batch_out_of_a_read_only_map(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(24, dtype=np.float32).reshape(6, 4))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    for source, rows in ((mapped, slice(1, 3)), (mapped, np.array([4, 1])), (RowStack([mapped]), np.array([2]))):
        batch = take_rows(source, rows)
        assert type(batch) is np.ndarray and batch.flags.writeable and batch.flags.c_contiguous
        np.testing.assert_array_equal(batch, np.asarray(mapped)[rows])
