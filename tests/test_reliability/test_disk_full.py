"""A full disk (or quota, or I/O error) while ``tools/train.py`` writes: one ``error:`` line
naming the file and the errno, the previous checkpoint and ``last_checkpoint`` untouched, no
partial file under a final name, and ``--resume`` works once there is space again.

Two ways: fault injection (a driver makes the kernel calls fail as a full disk does; needs no
privileges), and a real size-limited tmpfs (needs ``mount``, i.e. root; skipped otherwise).
"""

import errno
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import uuid

import pytest

from mmattn.engine.faults import EXIT_WRITE_FAILED
from mmattn.engine.hooks import is_complete_checkpoint
from mmattn.utils.checkpoint import safe_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIG = """
_base_ = {base!r}
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_iters={iters}, val_interval=1000)
train_dataloader = dict(batch_size=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
default_hooks = dict(checkpoint=dict(interval=3, max_keep_ckpts=1), logger=dict(interval=1))
"""

# Makes the chosen write fail as a full disk does, from inside the process, at the kernel-call
# boundary the real failure comes through (fsync: a deferred error on NFS; a log write: a
# buffered write's flush).
DRIVER = r"""
import errno, logging, os, runpy, sys
kind, code = os.environ['FAIL_AT'], getattr(errno, os.environ['FAIL_ERRNO'])
real_fsync = os.fsync
saves = []

def fsync(fd):
    path = os.readlink(f'/proc/self/fd/{fd}')
    if kind == 'checkpoint' and path.endswith('.part') and os.fstat(fd).st_size > 4096:
        saves.append(path)
        if len(saves) == 2:  # the second checkpoint save
            raise OSError(code, os.strerror(code))
    return real_fsync(fd)

class FailingStream:
    def __init__(self, stream):
        self.stream, self.writes = stream, 0
    def write(self, text):
        self.writes += 1
        if self.writes > 40:
            raise OSError(code, os.strerror(code))
        return self.stream.write(text)
    def __getattr__(self, name):
        return getattr(self.stream, name)

real_open = logging.FileHandler._open
def _open(self):
    stream = real_open(self)
    return FailingStream(stream) if kind == 'log' and self.baseFilename.endswith('.log') \
        else stream

os.fsync = fsync
logging.FileHandler._open = _open
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def _config(tmp_path, iters=8):
    cfg = tmp_path / f'cfg_{iters}.py'
    cfg.write_text(
        CONFIG.format(base=osp.join(REPO, 'configs/shapes/fpn_r18_shapes.py'), iters=iters)
    )
    return str(cfg)


def _run(cmd, env=None):
    return subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, **(env or {})),
    )


def _train(cfg, work, *extra, driver=None, env=None):
    head = [sys.executable] + ([driver] if driver else [])
    return _run(head + [osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir', work, *extra], env)


def _one_error(proc):
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr and 'Logging error' not in proc.stderr, proc.stderr[
        -3000:
    ]
    return lines[0]


def _assert_previous_intact(work, step):
    path = osp.join(work, f'iter_{step}.pth')
    assert is_complete_checkpoint(path)
    assert safe_load(path)['meta']['iter'] == step
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == path
    for name in os.listdir(work):
        if name.endswith('.pth'):
            assert name == f'iter_{step}.pth', os.listdir(work)  # no partial final name
    assert not glob.glob(osp.join(work, '.tmp-*.part'))


@pytest.mark.parametrize('code', ['ENOSPC', 'EDQUOT', 'EIO'])
def test_injected_checkpoint_write_failure(shapes_data, tmp_path, code):
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    cfg, work = _config(tmp_path), str(tmp_path / 'work')
    proc = _train(cfg, work, driver=str(driver), env=dict(FAIL_AT='checkpoint', FAIL_ERRNO=code))
    assert proc.returncode == EXIT_WRITE_FAILED, proc.stderr[-3000:]
    line = _one_error(proc)
    num = getattr(errno, code)
    assert line.startswith(
        f'error: cannot write {osp.join(work, "iter_6.pth")}: '
        f'{os.strerror(num)} (errno {num}, {code})'
    ), line
    assert '--resume' in line
    _assert_previous_intact(work, 3)

    if code == 'ENOSPC':  # once there is space again, resume completes the run
        proc = _train(cfg, work, '--resume')
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert 'resumed epoch: 0, iter: 3' in proc.stdout
        assert is_complete_checkpoint(osp.join(work, 'iter_8.pth'))


def test_injected_log_write_failure(shapes_data, tmp_path):
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    cfg, work = _config(tmp_path), str(tmp_path / 'work')
    proc = _train(cfg, work, driver=str(driver), env=dict(FAIL_AT='log', FAIL_ERRNO='ENOSPC'))
    assert proc.returncode == EXIT_WRITE_FAILED, proc.stderr[-3000:]
    line = _one_error(proc)
    assert re.match(
        rf'error: cannot write {re.escape(work)}/\d+_\d+/\d+_\d+\.log: No space '
        r'left on device \(errno 28, ENOSPC\)',
        line,
    ), line


def _mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    if shutil.which('mount') is None:
        return 'no mount command'
    proc = _run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', path])
    return None if proc.returncode == 0 else (proc.stderr.strip() or 'mount failed')


def test_real_full_tmpfs(shapes_data, tmp_path):
    """A real small filesystem: room for one checkpoint, not for the next one beside it."""
    cfg = _config(tmp_path)
    probe = str(tmp_path / 'probe')
    proc = _train(_config(tmp_path, iters=3), probe)  # how big is a checkpoint?
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = osp.getsize(osp.join(probe, 'iter_3.pth'))
    disk = str(tmp_path / f'disk_{uuid.uuid4().hex[:6]}')
    # One checkpoint, the logs and the config fit; a second checkpoint beside it does not.
    size = ckpt + ckpt // 2
    reason = _mount_tmpfs(disk, size)
    if reason:
        pytest.skip(
            f'cannot mount a size-limited tmpfs here ({reason}); the injected-fault '
            f'tests cover the same paths'
        )
    try:
        work = osp.join(disk, 'work')
        proc = _train(cfg, work)
        assert proc.returncode == EXIT_WRITE_FAILED, proc.stderr[-3000:]
        line = _one_error(proc)
        assert line.startswith(f'error: cannot write {work}/') and '(errno 28, ENOSPC)' in line, (
            line
        )
        _assert_previous_intact(work, 3)

        # Free space (grow the filesystem), then resume: the run completes.
        assert _run(['mount', '-o', f'remount,size={4 * ckpt}', disk]).returncode == 0
        proc = _train(cfg, work, '--resume')
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert 'resumed epoch: 0, iter: 3' in proc.stdout
        assert is_complete_checkpoint(osp.join(work, 'iter_8.pth'))
    finally:
        _run(['umount', disk])
