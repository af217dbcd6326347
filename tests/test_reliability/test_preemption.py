"""Preemption: a real SIGTERM / SIGINT to a real ``tools/train.py``, then ``--resume``.

Slurm warns a job with SIGTERM before it kills it; Ctrl-C sends SIGINT to the whole process
group, dataloader workers included. In both cases the run must finish the iteration in
progress, write a complete checkpoint, say so in one line and exit with 128 + the signal, and
``--resume`` must end with the same weights, bit for bit, as a run that was never interrupted.
"""

import glob
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import threading

import pytest
import torch

from mmattn.engine.faults import preempted_exit_code
from mmattn.engine.hooks import is_complete_checkpoint
from mmattn.utils.checkpoint import safe_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIG = """
_base_ = {base!r}
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_iters={iters}, val_interval=1000)
train_dataloader = dict(batch_size=2, num_workers={workers}, persistent_workers={persistent})
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2), logger=dict(interval=1))
"""
MAX_ITERS = 10
PREEMPTED = re.compile(r'preempted at iteration (\d+), checkpoint (\S+\.pth)')
ITER_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/')


def write_config(tmp_path, iters=MAX_ITERS, workers=0, name='cfg.py'):
    cfg = tmp_path / name
    cfg.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs/shapes/fpn_r18_shapes.py'),
            iters=iters,
            workers=workers,
            persistent=workers > 0,
        )
    )
    return str(cfg)


def train(cfg, work_dir, *extra, send=None, after_iter=2, group=False, timeout=600):
    """Run tools/train.py; with ``send``, deliver that signal once iteration ``after_iter``
    was logged (to the process group with ``group``, as a terminal's Ctrl-C does)."""
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir', work_dir, *extra]
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=group,
    )
    lines, sent = [], []

    def read():
        for line in proc.stdout:
            lines.append(line)
            match = ITER_LINE.search(line)
            if send is not None and not sent and match and int(match.group(1)) >= after_iter:
                sent.append(int(match.group(1)))
                if group:
                    os.killpg(proc.pid, send)
                else:
                    proc.send_signal(send)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.wait(timeout=timeout)
    reader.join(timeout=60)
    return proc.returncode, ''.join(lines)


def final_state(work_dir, step=MAX_ITERS):
    path = osp.join(work_dir, f'iter_{step}.pth')
    return safe_load(path)


def assert_same_weights(a, b):
    sa, sb = a['state_dict'], b['state_dict']
    assert sa.keys() == sb.keys()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    oa, ob = a['optimizer']['state'], b['optimizer']['state']
    assert all(torch.equal(oa[i]['exp_avg'], ob[i]['exp_avg']) for i in oa)


@pytest.fixture(scope='module')
def reference(shapes_data, tmp_path_factory):
    """The uninterrupted run's final checkpoint."""
    tmp = tmp_path_factory.mktemp('preempt_ref')
    work = str(tmp / 'work')
    rc, out = train(write_config(tmp), work)
    assert rc == 0, out[-3000:]
    return final_state(work)


@pytest.mark.parametrize(
    'signum,group,workers',
    [
        (signal.SIGTERM, False, 0),  # Slurm's warning signal, to the training process
        (signal.SIGINT, True, 1),  # Ctrl-C: to the process group, dataloader worker included
    ],
    ids=['sigterm', 'sigint-group-with-worker'],
)
def test_signal_saves_then_resume_equals_uninterrupted(reference, tmp_path, signum, group, workers):
    cfg = write_config(tmp_path, workers=workers)
    work = str(tmp_path / 'work')
    rc, out = train(cfg, work, send=signum, after_iter=2, group=group)
    assert rc == preempted_exit_code(signum), f'exit {rc}\n{out[-3000:]}'
    found = PREEMPTED.findall(out)
    assert len(found) == 1, out[-3000:]
    step, path = int(found[0][0]), found[0][1]
    # The iteration in progress finished (the signal came after iteration 2 was logged),
    # and its checkpoint is complete and named by the pointer.
    assert 2 <= step < MAX_ITERS, out[-3000:]
    assert path == osp.join(work, f'iter_{step}.pth') and is_complete_checkpoint(path)
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == path
    assert safe_load(path)['meta']['iter'] == step
    assert 'Traceback' not in out, out[-3000:]
    assert not glob.glob(osp.join(work, '.tmp-*.part'))

    rc, out = train(cfg, work, '--resume')
    assert rc == 0, out[-3000:]
    assert f'resumed epoch: 0, iter: {step}' in out
    assert_same_weights(final_state(work), reference)


def test_signal_before_training_keeps_its_default_action(shapes_data, tmp_path):
    """Outside the training loop (here: while the runner is built) SIGTERM still ends the run
    at once; nothing is saved, nothing hangs."""
    cfg = write_config(tmp_path)
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'),
        cfg,
        '--work-dir',
        str(tmp_path / 'w'),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED='1'),
    )
    out = []
    for line in proc.stdout:
        out.append(line)
        if 'Config:' in line or 'Environment info' in line:  # the runner is being built
            proc.send_signal(signal.SIGTERM)
            break
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGTERM, ''.join(out)[-2000:]
    assert not glob.glob(str(tmp_path / 'w' / '*.pth'))
