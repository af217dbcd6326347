"""Crash-safe training: ``tools/train.py`` killed with SIGKILL, then ``--resume``.

A driver runs ``tools/train.py`` exactly as a user does, after wrapping ``os.fsync``,
``os.replace`` and ``os.remove`` so that the process SIGKILLs itself at a chosen point of a
checkpoint save (a torn temporary file, before/after the rename, a torn pointer, before the
outdated checkpoint is deleted). One run is also killed from outside at a random moment. Each
crash is followed by ``--resume``; the chain ends with a run that completes. The losses of every
iteration, in every run that logged it, must equal those of an uninterrupted run.
"""

import glob
import json
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from mmattn.engine.hooks import find_resume_checkpoint, is_complete_checkpoint

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

DRIVER = r"""
import os, runpy, signal, sys
kind = os.environ.get('CRASH_AT', '')

def die():
    sys.stdout.flush(); sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

real_fsync, real_replace, real_remove = os.fsync, os.replace, os.remove

def fsync(fd):
    try:
        path = os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        path = ''
    if path.endswith('.part'):
        size = os.fstat(fd).st_size
        what = 'ckpt' if size > 4096 else 'pointer'
        if kind == 'torn-' + what:
            os.ftruncate(fd, size // 2)  # as if the disk got only half of it
            die()
    return real_fsync(fd)

def replace(src, dst, *a, **k):
    if kind == 'before-rename' and str(dst).endswith('.pth'):
        die()
    real_replace(src, dst, *a, **k)
    if kind == 'after-rename' and str(dst).endswith('.pth'):
        die()

def remove(path, *a, **k):
    if kind == 'before-delete' and str(path).endswith('.pth'):
        die()
    return real_remove(path, *a, **k)

os.fsync, os.replace, os.remove = fsync, replace, remove
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""

CONFIG = """
_base_ = {base!r}
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_iters={iters}, val_interval=1000)
train_dataloader = dict(batch_size=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(
    checkpoint=dict(interval=2, max_keep_ckpts=1), logger=dict(interval=1))
"""

MAX_ITERS = 12
RESUMED = re.compile(r'resumed epoch: \d+, iter: (\d+)')


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.pop('CRASH_AT', None)
    return env


def _train(cfg, work_dir, driver, crash=None, resume=False, kill_after=None):
    """Run tools/train.py (through the driver); returns (returncode, output).

    ``kill_after`` seconds are counted from the line saying where the run resumed, not from
    the start: start-up time varies several-fold between machines, and a kill during start-up
    would never reach the training loop this is meant to interrupt.
    """
    cmd = [
        sys.executable,
        driver,
        osp.join(REPO, 'tools', 'train.py'),
        cfg,
        '--work-dir',
        work_dir,
    ] + (['--resume'] if resume else [])
    env = _env()
    if crash:
        env['CRASH_AT'] = crash
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines, resumed = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if RESUMED.search(line):
                resumed.set()
        resumed.set()  # output ended: nothing left to wait for

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill_after is not None and resumed.wait(timeout=600):
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=600)
    reader.join(timeout=60)
    return proc.returncode, ''.join(lines)


def _losses(work_dir):
    """{iter: [loss in every run that logged it]} from all runs' scalars.json."""
    found = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # the last line of a killed run may be cut
                    continue
                if 'loss' in rec and 'iter' in rec:
                    found.setdefault(rec['iter'], []).append(rec['loss'])
    return found


def _newest_loadable(work_dir):
    """Independent of the code under test: the highest-step checkpoint torch can load."""
    best = 0
    for path in glob.glob(osp.join(work_dir, 'iter_*.pth')):
        try:
            # our own run's files; deliberately not mmattn's loader, whose behaviour is tested
            torch.load(path, map_location='cpu', weights_only=False)
        except Exception:
            continue
        best = max(best, int(re.search(r'iter_(\d+)\.pth', path).group(1)))
    return best


def test_sigkill_anywhere_then_resume_matches_uninterrupted(shapes_data, tmp_path):
    cfg = tmp_path / 'fpn_crash.py'
    cfg.write_text(
        CONFIG.format(base=osp.join(REPO, 'configs/shapes/fpn_r18_shapes.py'), iters=MAX_ITERS)
    )
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    cfg, driver = str(cfg), str(driver)

    ref_dir = str(tmp_path / 'uninterrupted')
    rc, out = _train(cfg, ref_dir, driver)
    assert rc == 0, out[-3000:]
    ref = {it: v[0] for it, v in _losses(ref_dir).items()}
    assert sorted(ref) == list(range(1, MAX_ITERS + 1))

    work = str(tmp_path / 'crashed')
    rng = random.Random(int(time.time()))
    # Deterministic crash points first: each dies at the next checkpoint save, so each leaves
    # work for the next run. The random kill goes last, 0-2 s after the run resumed (a few
    # iterations); on a fast machine it can come after the run finished, and then it misses.
    plan = [
        ('torn-ckpt', None),
        ('before-rename', None),
        ('after-rename', None),
        ('torn-pointer', None),
        ('before-delete', None),
        ('random', rng.uniform(0.0, 2.0)),
    ]
    crashes, resumed_from = 0, []
    for i, (kind, delay) in enumerate(plan):
        expected_start = _newest_loadable(work) if i else 0
        rc, out = _train(
            cfg,
            work,
            driver,
            crash=None if kind == 'random' else kind,
            resume=i > 0,
            kill_after=delay,
        )
        if rc == -signal.SIGKILL:
            crashes += 1
        else:
            assert rc == 0, f'{kind}: exited {rc}\n{out[-3000:]}'
        if i > 0:
            match = RESUMED.search(out)
            start = int(match.group(1)) if match else 0
            assert start == expected_start, (
                f'{kind}: resumed from {start}, newest complete '
                f'checkpoint was {expected_start}\n{out[-3000:]}'
            )
            resumed_from.append(start)
        # A final name never holds a partial file, whatever the moment of the kill.
        for path in glob.glob(osp.join(work, '*.pth')):
            assert is_complete_checkpoint(path), f'{kind}: {path} is incomplete'
    # The torn/renamed/pointer crash points are deterministic; the random one may miss.
    assert crashes >= len(plan) - 1

    expected_start = _newest_loadable(work)
    rc, out = _train(cfg, work, driver, resume=True)
    assert rc == 0, out[-3000:]
    assert f'iter: {expected_start}' in out
    assert not glob.glob(osp.join(work, '.tmp-*.part')), 'stale temporary files left behind'
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip().endswith(f'iter_{MAX_ITERS}.pth')

    got = _losses(work)
    assert sorted(got) == sorted(ref)
    worst = max(abs(v - ref[it]) for it, vals in got.items() for v in vals)
    print(
        f'crash points tried: {len(plan)} (killed: {crashes}), resumed from {resumed_from}, '
        f'max |loss - uninterrupted| = {worst:.3g}'
    )
    for it, vals in got.items():
        for v in vals:
            assert v == pytest.approx(ref[it], rel=1e-6, abs=1e-7), (it, vals, ref[it])


def _fake_ckpt(path, step):
    torch.save({'meta': {'iter': step}, 'state_dict': {'w': torch.zeros(2000)}}, path)


def test_resume_skips_truncated_and_dangling(tmp_path):
    """A work dir written by the stock hook, killed mid-save: pointer -> truncated file."""
    work = str(tmp_path)
    for step in (2, 4, 6):
        _fake_ckpt(osp.join(work, f'iter_{step}.pth'), step)
    with open(osp.join(work, 'iter_6.pth'), 'r+b') as f:
        f.truncate(os.path.getsize(osp.join(work, 'iter_6.pth')) // 2)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'iter_6.pth'))
    assert not is_complete_checkpoint(osp.join(work, 'iter_6.pth'))
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')

    # Pointer emptied by a kill between truncate and write; newest file gone.
    os.remove(osp.join(work, 'iter_6.pth'))
    open(osp.join(work, 'last_checkpoint'), 'w').close()
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')

    # A byte flipped inside a record (torn write) fails the CRC check.
    path = osp.join(work, 'iter_4.pth')
    with open(path, 'r+b') as f:
        data = bytearray(f.read())
        mid = data.find(b'\x00' * 64, len(data) // 4)
        f.seek(mid)
        f.write(b'\x01')
    assert not is_complete_checkpoint(path)
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_2.pth')

    for name in os.listdir(work):
        if name.endswith('.pth'):
            os.remove(osp.join(work, name))
    assert find_resume_checkpoint(work) is None


OUT_DRIVER = r"""
import os, runpy, signal, sys
target = os.environ.get('KILL_BEFORE_REPLACE')
real_replace = os.replace

def replace(src, dst, *a, **k):
    if target and os.path.abspath(str(dst)) == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **k)

os.replace = replace
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def test_test_py_out_is_complete_or_untouched(shapes_data, tmp_path):
    """tools/test.py --out killed just before publishing: the old file stays intact."""
    import pickle

    from reliability_families import build_model, config_text

    from mmattn.utils.checkpoint import save_atomic

    extra = 'test_dataloader = dict(dataset=dict(indices=4))\n'
    model = build_model('shunted', tmp_path, extra=extra)
    ckpt = str(tmp_path / 'model.pth')
    save_atomic({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(config_text('shunted', extra=extra))
    driver = tmp_path / 'out_driver.py'
    driver.write_text(OUT_DRIVER)
    out = tmp_path / 'results' / 'preds.pkl'
    out.parent.mkdir()
    out.write_bytes(b'results of an earlier run')
    cmd = [
        sys.executable,
        str(driver),
        osp.join(REPO, 'tools', 'test.py'),
        str(cfg),
        ckpt,
        '--work-dir',
        str(tmp_path / 'w'),
        '--out',
        str(out),
    ]
    env = dict(_env(), KILL_BEFORE_REPLACE=str(out.resolve()))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert out.read_bytes() == b'results of an earlier run'

    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4
    # Only the killed run's hidden temporary file may remain; no other file appeared.
    assert sorted(p.name for p in out.parent.iterdir() if not p.name.startswith('.')) == [
        'preds.pkl'
    ]
