"""Helpers for this project's distributed tests: the ranks of a small gloo job on one machine.

Only core's own tests start ranks, so these live beside them rather than in the plugin-author
contract of :mod:`fwi_plugins.testing`. pytest puts ``tests/`` on the path (``pythonpath`` in
pyproject.toml), so a test imports them as ``from helpers_distributed import ...``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

_TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")


def single_process_env() -> dict[str, str]:
    """This process's environment with one thread and no ``torchrun`` variables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in _TORCHRUN_KEYS:
        env.pop(key, None)
    return env


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gloo_ranks(args: list[str], *, world: int = 2) -> list[subprocess.Popen[str]]:
    """``python ARGS`` started ``world`` times with the environment ``torchrun`` gives its ranks
    (one thread each, a free local port): the processes of a gloo job on this machine."""
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = {**single_process_env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def wait_ranks(procs: list[subprocess.Popen[str]], *, timeout: float) -> list[str]:
    """Every rank's output once all have ended; an ``AssertionError`` names a rank that failed.

    Every rank is waited for (one that finishes first must not cut the others short); any left
    running when waiting fails is killed.
    """
    try:
        outputs = [process.communicate(timeout=timeout)[0] for process in procs]
    finally:
        for process in procs:
            if process.poll() is None:
                process.kill()
    for rank, (process, output) in enumerate(zip(procs, outputs, strict=True)):
        assert process.returncode == 0, f"rank {rank}: {output[-3000:]}"
    return outputs
