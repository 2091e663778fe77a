"""Distributed training: two gloo processes on CPU, as torchrun starts them on a GPU cluster.

Two processes with 4 samples each per step must train the network the single process
trains with 8 per step: DistributedSampler splits each global batch between the ranks
and DDP averages their gradients.

The default suite starts the two ranks itself with torchrun's environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``) and trains the single-process reference
in the test's own process meanwhile; the slow test goes through ``torchrun`` itself.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers_distributed import single_process_env, start_gloo_ranks, wait_ranks

WORKER = textwrap.dedent('''
    import os
    import sys

    import numpy as np
    import torch
    from torch import nn

    from fwi_plugins.engine.training import train as T
    from fwi_plugins.engine.training.distributed import setup_distributed
    from fwi_plugins.engine.training.data import TrainData
    from fwi_plugins.engine.options import TrainOptions

    torch.set_num_threads(1)


    class Scale:
        vmin, vmax = 1500.0, 4500.0

        def velocity_to_unit(self, v):
            return (v - 3000.0) / 1500.0

        def velocity_from_unit(self, u):
            return u * 1500.0 + 3000.0

        def gathers_to_unit(self, d):
            return d


    def data():
        rng = np.random.default_rng(0)
        v = rng.uniform(1500, 4500, size=(16, 1, 4, 4)).astype(np.float32)
        d = np.repeat(((v - 3000.0) / 1500.0).reshape(16, 1, 1, 16), 3, axis=2).astype(np.float32)
        return TrainData(gathers=d, velocity=v), TrainData(gathers=d[:6], velocity=v[:6])


    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.Tanh(), nn.Linear(32, 16), nn.Unflatten(1, (1, 4, 4)))


    def main(out, batch_size):
        info = setup_distributed("cpu")
        net = model()
        train, val = data()
        options = TrainOptions(epochs=3, batch_size=batch_size, lr=1e-2, device="cpu", progress=False)
        result = T.train(net, train, val, options=options, normalization=Scale(),
                         checkpoint_dir=os.path.join(out, "ckpt"))
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                  os.path.join(out, f"rank{info.rank}.safetensors"))
        with open(os.path.join(out, f"val{info.rank}.txt"), "w") as f:
            f.write(repr(result.history[-1]["val_mae"]) + " " + str(result.steps))
        if info.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


    if __name__ == "__main__":
        main(sys.argv[1], int(sys.argv[2]))
''')


def test_two_gloo_processes_train_like_one_with_the_whole_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    (tmp_path / "ddp").mkdir()
    (tmp_path / "single").mkdir()
    ranks = start_gloo_ranks([str(script), str(tmp_path / "ddp"), "4"])
    # The reference trains here while the ranks start: one process, the whole batch of 8.
    spec = importlib.util.spec_from_file_location("ddp_worker", script)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    worker.main(str(tmp_path / "single"), 8)
    wait_ranks(ranks, timeout=120)
    _check_against_single_process(tmp_path)


@pytest.mark.slow
def test_torchrun_launches_two_gloo_processes_that_train_like_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = single_process_env()
    (tmp_path / "ddp").mkdir()
    (tmp_path / "single").mkdir()
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
         str(tmp_path / "ddp"), "4"], env=env, capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "single"), "8"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    _check_against_single_process(tmp_path)


def _check_against_single_process(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    rank0 = load_file(str(tmp_path / "ddp" / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "ddp" / "rank1.safetensors"))
    alone = load_file(str(tmp_path / "single" / "rank0.safetensors"))
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), f"ranks disagree on {key}"
        assert torch.allclose(value, alone[key], atol=1e-5), f"{key} differs from single-process training"
    # Validation is sharded and reduced: every rank reports the global figure.
    v0, v1, vs = ((tmp_path / d / f).read_text().split() for d, f in
                  (("ddp", "val0.txt"), ("ddp", "val1.txt"), ("single", "val0.txt")))
    assert v0 == v1
    assert float(v0[0]) == pytest.approx(float(vs[0]), abs=1e-5) and v0[1] == vs[1]
    # Only rank 0 wrote the checkpoint.
    assert (tmp_path / "ddp" / "ckpt" / "latest.json").is_file()
    assert sorted(p.name for p in (tmp_path / "ddp" / "ckpt").iterdir()) == ["epoch-0003", "latest.json"]
