"""Filling the simulation cache in shards: each process of a job simulates its own parts.

Part ``i`` belongs to rank ``i % world``; once every rank has filled its share, reading the
gathers simulates nothing and gives what one process simulating everything gives. A restart
simulates only the parts still missing. The distributed test starts two gloo processes the
way ``torchrun`` does and runs ``fwi pretrain``'s own loading on them.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

import fwi_plugins.data.cache as cache
from fwi_plugins.data.cache import cached_gathers, fill_shard
from fwi_plugins.survey import Survey
from fwi_plugins.testing import LinearPhysics
from helpers_distributed import start_gloo_ranks, wait_ranks


class CountingPhysics(LinearPhysics):
    """The linear stand-in physics, recording the first model of every call."""

    def __init__(self, survey: Survey) -> None:
        super().__init__(survey)
        self.calls: list[float] = []

    def simulate(self, velocity):
        self.calls.extend(float(v) for v in velocity[:, 0, 0, 0])
        return super().simulate(velocity)


SURVEY = Survey.small(nz=12, nx=12, nt=30, n_sources=2)
IDENTITY = {"dataset": "test", "split": "train"}


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(cache, "PART_SIZE", 2)


def _velocity(n: int = 7) -> np.ndarray:
    v = np.random.default_rng(5).uniform(1500, 4500, (n, 1, 12, 12)).astype(np.float32)
    v[:, 0, 0, 0] = np.arange(n) + 2000.0  # a tag per model: which ones a physics simulated
    return v


def test_each_rank_simulates_only_its_own_parts_and_together_they_fill_the_cache(tmp_path, small_parts):
    velocity = _velocity()
    done = {}
    for rank in range(3):
        physics = CountingPhysics(SURVEY)
        n = fill_shard(velocity, physics, IDENTITY, rank=rank, world=3, cache_dir=tmp_path, progress=False,
                       batch_size=1)
        done[rank] = sorted(int(t - 2000) for t in physics.calls)
        assert n == len(done[rank])
    # Parts of 2 models: rank 0 owns parts 0 and 3, rank 1 part 1, rank 2 part 2.
    assert done == {0: [0, 1, 6], 1: [2, 3], 2: [4, 5]}

    reader = CountingPhysics(SURVEY)
    gathers = cached_gathers(velocity, reader, IDENTITY, cache_dir=tmp_path, progress=False)
    assert reader.calls == []
    with torch.no_grad():
        expected = LinearPhysics(SURVEY).simulate(torch.from_numpy(velocity)).numpy()
    np.testing.assert_allclose(gathers, expected, rtol=1e-4, atol=1e-5)  # float32, batched differently


def test_a_restart_simulates_only_the_missing_parts(tmp_path, small_parts):
    velocity = _velocity(5)
    fill_shard(velocity, CountingPhysics(SURVEY), IDENTITY, rank=0, world=1, cache_dir=tmp_path, progress=False)
    entry = next(p for p in tmp_path.iterdir() if p.is_dir())
    (entry / "part-0000002-0000004.json").unlink()  # a part interrupted before its record was written
    again = CountingPhysics(SURVEY)
    n = fill_shard(velocity, again, IDENTITY, rank=0, world=1, cache_dir=tmp_path, progress=False)
    assert n == 2 and sorted(int(t - 2000) for t in again.calls) == [2, 3]
    assert fill_shard(velocity, CountingPhysics(SURVEY), IDENTITY, rank=0, world=1, cache_dir=tmp_path,
                      progress=False) == 0


@pytest.mark.parametrize(("rank", "world"), [(2, 2), (-1, 2), (0, 0)])
def test_a_rank_outside_the_job_is_refused(tmp_path, rank, world):
    with pytest.raises(ValueError, match="rank"):
        fill_shard(_velocity(2), LinearPhysics(SURVEY), IDENTITY, rank=rank, world=world, cache_dir=tmp_path)


def test_a_dataset_fills_its_share_and_then_reads_every_part(tmp_path, small_parts):
    from fwi_plugins import api

    options = {"n_train": 5, "n_val": 0, "n_test": 0, "nz": 12, "nx": 12}
    filled = []
    for rank in range(2):
        ds = api.load_dataset("flatvel-a", options)
        ds.survey = SURVEY
        filled.append(ds.fill_gathers("train", LinearPhysics(SURVEY), rank=rank, world=2, cache_dir=tmp_path,
                                      progress=False))
        assert ds.fill_gathers("test", LinearPhysics(SURVEY), rank=rank, world=2, cache_dir=tmp_path) == 0
    assert filled == [3, 2]
    ds = api.load_dataset("flatvel-a", options)
    ds.survey = SURVEY
    reader = CountingPhysics(SURVEY)
    assert ds.gathers("train", reader, cache_dir=tmp_path, progress=False).shape == (5, 2, 30, 12)
    assert reader.calls == []


WORKER = textwrap.dedent("""
    import json
    import sys
    from types import SimpleNamespace

    import fwi_plugins.data.cache as cache
    from fwi_plugins import api
    from fwi_plugins.engine.jobs import pretrain
    from fwi_plugins.engine.training.distributed import barrier, setup_distributed
    from fwi_plugins.survey import Survey
    from fwi_plugins.testing import LinearPhysics

    cache.PART_SIZE = 2
    calls = []
    real_simulate = cache.simulate

    def recorded(velocity, physics, *, start=0, stop=None, **kwargs):
        calls.append([round(float(velocity[start, 0, 0, 0])), start, stop])
        return real_simulate(velocity, physics, start=start, stop=stop, **kwargs)

    cache.simulate = recorded
    out, cache_dir = sys.argv[1], sys.argv[2]
    info = setup_distributed("cpu")
    survey = Survey.small(nz=12, nx=12, nt=30, n_sources=2)
    datasets = []
    for name, n_train in (("flatvel-a", 5), ("curvevel-a", 3)):
        ds = api.load_dataset(name, {"n_train": n_train, "n_val": 2, "n_test": 0, "nz": 12, "nx": 12})
        ds.survey = survey
        datasets.append(ds)
    opts = SimpleNamespace(cache_dir=cache_dir, progress=False)
    pretrain._fill_splits(datasets, [LinearPhysics(survey) for _ in datasets], opts, info)
    barrier(info)
    with open(f"{out}/rank{info.rank}.json", "w") as fh:
        json.dump(calls, fh)
""")


def test_pretrain_ranks_share_the_simulation_of_every_split(tmp_path):
    """Two gloo ranks through pretrain's own fill step: each simulates its own parts, none twice."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    wait_ranks(start_gloo_ranks([str(script), str(tmp_path), str(tmp_path / "cache")]), timeout=240)
    calls = {rank: json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)}
    # Splits of 5 + 2 and 3 + 2 models in parts of 2: parts (0-2, 2-4, 4-5), (0-2), (0-2, 2-3), (0-2).
    parts = {rank: sorted((start, stop) for _, start, stop in c) for rank, c in calls.items()}
    assert parts[0] == [(0, 2), (0, 2), (0, 2), (0, 2), (4, 5)]
    assert parts[1] == [(2, 3), (2, 4)]
    # Every (split, part) simulated exactly once over both ranks.
    seen = [(first, start) for c in calls.values() for first, start, _ in c]
    assert len(seen) == len(set(seen)) == 7


SIMULATE_WORKER = textwrap.dedent("""
    import json
    import sys

    import fwi_plugins.data.cache as cache
    from fwi_plugins.engine.jobs.simulate import simulate_files

    cache.PART_SIZE = 2
    starts = []
    real_simulate = cache.simulate

    def recorded(velocity, physics, *, start=0, stop=None, **kwargs):
        starts.append(start)
        return real_simulate(velocity, physics, start=start, stop=stop, **kwargs)

    cache.simulate = recorded
    out = sys.argv[1]
    done = simulate_files(out=f"{out}/gathers.npy", dataset="flatvel-b",
                          dataset_options={"n_train": "5", "nz": "20", "nx": "20"}, survey="small",
                          cache_dir=f"{out}/cache", progress=False)
    import os
    rank = os.environ["RANK"]
    with open(f"{out}/simulate{rank}.json", "w") as fh:
        json.dump({"starts": starts, "paths": [str(p) for p in done.paths]}, fh)
""")


def test_fwi_simulate_under_torchrun_shares_the_models_and_writes_once(tmp_path):
    """Two gloo ranks of ``simulate_files``: disjoint parts, one file, the single process's gathers."""
    from fwi_plugins.engine.jobs.simulate import simulate_files

    script = tmp_path / "worker.py"
    script.write_text(SIMULATE_WORKER)
    wait_ranks(start_gloo_ranks([str(script), str(tmp_path)]), timeout=240)
    ranks = [json.loads((tmp_path / f"simulate{r}.json").read_text()) for r in range(2)]
    assert sorted(ranks[0]["starts"]) == [0, 4] and ranks[1]["starts"] == [2]
    assert ranks[0]["paths"] == [str(tmp_path / "gathers.npy")] and ranks[1]["paths"] == []
    alone = simulate_files(out=tmp_path / "alone.npy", dataset="flatvel-b",
                           dataset_options={"n_train": "5", "nz": "20", "nx": "20"}, survey="small",
                           cache_dir=tmp_path / "fresh-cache", progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "gathers.npy"), alone.gathers, rtol=1e-5,
                               atol=1e-6 * np.abs(alone.gathers).max())
