"""Shared fixtures: the bundled datasets and a way to run the tools as a user does."""

import os
import os.path as osp
import socket
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(REPO, 'data')

# ``make test`` runs the suite on pytest-xdist workers, one per core. Each worker, and every tool
# it starts in a subprocess, then gets its share of the cores: two workers with two threads each
# on two cores would time-slice every matrix product. Set before torch is first imported here.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
THREADS = max(1, CORES // int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')))
os.environ['OMP_NUM_THREADS'] = str(THREADS)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(THREADS)


@pytest.fixture(scope='session')
def shapes_data():
    """Paths of the bundled datasets, generated (atomically) if missing."""
    from mmattn.datasets import make_shapes_ade, make_shapes_coco

    coco, ade = osp.join(DATA, 'shapes_coco'), osp.join(DATA, 'shapes_ade')
    make_shapes_coco(coco)
    make_shapes_ade(ade)
    return dict(coco=coco, ade=ade)


def run_tool(script, *args, timeout=900, env=None, check=True):
    """Run ``tools/<script>`` in a subprocess from the repo root, as a user would.

    Returns the CompletedProcess; with ``check`` a non-zero exit fails the test and shows the
    tail of the output.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    cmd = [sys.executable, osp.join(REPO, 'tools', script)] + [str(a) for a in args]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f'{" ".join(cmd)} exited {proc.returncode}\n--- stdout ---\n'
            f'{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}'
        )
    return proc


@pytest.fixture
def tool():
    return run_tool


def _free_port():
    # Ask the kernel for a port that is free now instead of guessing one: a random guess can
    # land on an ephemeral port that an earlier gloo run still holds.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port():
    """A function returning a TCP port free right now (for torchrun's rendezvous)."""
    return _free_port
