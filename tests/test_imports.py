"""Importing mmattn registers modules and does nothing else (STYLE.md section 9).

Each check runs in a fresh interpreter, so what an earlier test imported cannot hide a side
effect: no patched checkpoint loader, no umask change, no file backend registered, and no
import cycle between the engine and the data checks (either imported first works).
"""

import subprocess
import sys

import pytest

_PROBE = r"""
import os
calls = []
real_umask = os.umask
os.umask = lambda mask: calls.append(mask) or real_umask(mask)
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.fileio.backends.registry_utils import backends
local_before = CheckpointLoader._schemes['']
backends_before = set(backends)
import mmattn, mmattn.models, mmattn.engine, mmattn.engine.hooks, mmattn.utils.data_checks
import mmattn.analysis
assert CheckpointLoader._schemes[''] is local_before, 'import replaced the checkpoint loader'
assert set(backends) == backends_before, set(backends) - backends_before
assert not calls, f'import called os.umask {calls}'
import mmattn.safe_loading  # the documented opt-in does install it
assert CheckpointLoader._schemes[''] is not local_before
assert CheckpointLoader._schemes[''].__module__ == 'mmattn.utils.checkpoint'
print('clean')
"""


def test_import_has_no_side_effects_beyond_registration():
    proc = subprocess.run(
        [sys.executable, '-c', _PROBE], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and 'clean' in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize(
    'first',
    [
        'mmattn.utils.data_checks',
        'mmattn.engine.hooks',
        'mmattn.engine.run',
        'mmattn.utils.cli',
        'mmattn.models',
    ],
)
def test_no_import_cycles(first):
    proc = subprocess.run(
        [sys.executable, '-c', f'import {first}'], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_atomic_write_keeps_the_umask_mode(tmp_path):
    """The written file has the mode a plain open() gives (0666 minus the umask)."""
    import os

    from mmattn.utils.atomic import atomic_write

    plain = tmp_path / 'plain.txt'
    plain.write_text('x')
    atomic = tmp_path / 'atomic.txt'
    atomic_write(str(atomic), 'y')
    assert atomic.read_text() == 'y'
    assert os.stat(atomic).st_mode == os.stat(plain).st_mode
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.part')]


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    from mmattn.utils.atomic import atomic_write

    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')

    def fail(f):
        f.write(b'partial')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        atomic_write(str(target), fail)
    assert target.read_bytes() == b'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.bin']
