"""Safe loading: a checkpoint that runs code when unpickled is refused on every load path.

The crafted pickle's ``__reduce__`` calls ``open(path, 'w')``: unpickling it with the plain
unpickler creates a file (shown first, so the test is not vacuous). Through ``safe_load``,
``init_cfg=dict(type='Pretrained')``, ``tools/train.py --resume``, ``tools/test.py`` and the
converters it is rejected with a clear message and the file never appears.
"""

import glob
import os
import os.path as osp

import pytest
import torch
from reliability_families import FAMILIES, REPO, config_text


class _Evil:
    """Unpickling this calls ``open(target, 'w')``: a stand-in for arbitrary code."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


@pytest.fixture
def evil(tmp_path):
    target = str(tmp_path / 'pwned.txt')
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.zeros(3)}, 'meta': {'x': _Evil(target)}}, path)
    assert not osp.exists(target)
    return path, target


def test_crafted_pickle_really_creates_a_file(evil):
    path, target = evil
    torch.load(path, weights_only=False)  # what mmengine/torch < 2.6 would do
    assert osp.exists(target)
    os.remove(target)


def test_safe_load_rejects(evil):
    from mmattn.utils.checkpoint import UnsafeCheckpointError, safe_load

    path, target = evil
    with pytest.raises(UnsafeCheckpointError, match='refusing to load .*evil.pth.*allow-list'):
        safe_load(path)
    assert not osp.exists(target)


def test_init_cfg_pretrained_rejects(evil):
    import mmattn.safe_loading  # noqa: F401  (installs the safe loader into MMEngine)
    from mmattn.registry import MODELS
    from mmattn.utils.checkpoint import UnsafeCheckpointError

    path, target = evil
    bb = dict(
        FAMILIES['shunted'][0],
        type='ShuntedTransformer',
        init_cfg=dict(type='Pretrained', checkpoint=path),
    )
    model = MODELS.build(bb)
    with pytest.raises(UnsafeCheckpointError, match='refusing to load'):
        model.init_weights()
    assert not osp.exists(target)


def test_resume_and_test_py_reject(evil, shapes_data, tmp_path, tool):
    path, target = evil
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(config_text('shunted'))
    for script, args in (
        ('train.py', (cfg, '--work-dir', tmp_path / 'w1', '--resume', path)),
        ('test.py', (cfg, path, '--work-dir', tmp_path / 'w2')),
    ):
        proc = tool(script, *args, check=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
        assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
        assert 'refusing to load' in errors[0] and 'evil.pth' in errors[0], errors[0]
        assert not osp.exists(target), f'{script} unpickled the payload'
    assert not glob.glob(str(tmp_path / 'w1' / '*.pth'))


def test_converters_reject(evil, tmp_path):
    from mmattn.utils.checkpoint import UnsafeCheckpointError

    path, target = evil
    converters = sorted(glob.glob(osp.join(REPO, 'mmattn', 'converters', '*.py')))
    tried = 0
    for file in converters:
        name = osp.splitext(osp.basename(file))[0]
        if name.startswith('_'):
            continue
        mod = __import__(f'mmattn.converters.{name}', fromlist=['convert_file'])
        if not hasattr(mod, 'convert_file'):
            continue
        dst = str(tmp_path / f'{name}_out.pth')
        with pytest.raises(UnsafeCheckpointError):
            mod.convert_file(path, dst)
        assert not osp.exists(dst) and not osp.exists(target), name
        tried += 1
    assert tried >= 1


def test_allow_list_still_loads_mmengine_checkpoints(tmp_path):
    """What MMEngine itself writes (HistoryBuffer, numpy arrays/scalars) stays loadable."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    from mmattn.utils.checkpoint import safe_load

    buf = HistoryBuffer()
    buf.update(1.5)
    ckpt = {
        'meta': {'seed': np.int64(3), 'arr': np.arange(3)},
        'message_hub': {'log_scalars': {'loss': buf}},
        'state_dict': {'w': torch.ones(2)},
    }
    path = str(tmp_path / 'ok.pth')
    torch.save(ckpt, path)
    out = safe_load(path)
    assert out['meta']['seed'] == 3 and out['message_hub']['log_scalars']['loss'].current() == 1.5


def test_safetensors_round_trip(tmp_path):
    """Converted weights written as .safetensors load back (and as init_cfg Pretrained)."""
    import mmattn.safe_loading  # noqa: F401
    from mmattn.registry import MODELS
    from mmattn.utils.checkpoint import safe_load, save_atomic

    bb = dict(FAMILIES['shunted'][0], type='ShuntedTransformer')
    torch.manual_seed(0)
    src = MODELS.build(bb)
    path = str(tmp_path / 'shunted.safetensors')
    save_atomic({'state_dict': src.state_dict()}, path)
    with open(path, 'rb') as f:
        assert not f.read(64).startswith(b'PK')  # a safetensors file, not a zip pickle
    loaded = safe_load(path)['state_dict']
    assert loaded.keys() == src.state_dict().keys()
    for k, v in src.state_dict().items():
        assert torch.equal(loaded[k], v), k
    torch.manual_seed(1)
    dst = MODELS.build(dict(bb, init_cfg=dict(type='Pretrained', checkpoint=path)))
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
