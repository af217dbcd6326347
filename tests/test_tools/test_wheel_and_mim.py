"""``python -m build`` makes an sdist and a wheel; the wheel, installed (not editable) into a
fresh virtualenv, is a working mmattn whose configs are reachable through ``.mim`` (``mmattn::``
paths, ``mim train mmattn``, ``mim run mmdet print_config``).

The fresh venv has no packages of its own but the wheel; the heavy stack (torch, the cached mmcv
build, mmengine, mmdet, mmseg, mim) is reached through one ``.pth`` line pointing at the current
environment's site-packages. That directory holds only mmattn's *editable* hook (a ``.pth`` that
Python does not process in a directory added this way), so ``import mmattn`` can only find the
wheel's copy; the test checks that it does.
"""

import json
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COPY_IGNORE = shutil.ignore_patterns(
    '.git',
    '.venv',
    'data',
    'work_dirs',
    'build',
    'dist',
    '*.egg-info',
    '__pycache__',
    '.ruff_cache',
)


def _run(cmd, cwd, env=None, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f'{" ".join(map(str, cmd))} exited {proc.returncode}\n--- stdout ---\n'
            f'{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}'
        )
    return proc


@pytest.fixture(scope='module')
def wheel_venv(tmp_path_factory, shapes_data_module):
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    # mmattn/.mim holds symlinks in the repository; the wheel gets real copies (setup.py).
    shutil.copytree(REPO, src, ignore=COPY_IGNORE, symlinks=True)
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    _run(
        [sys.executable, '-m', 'build', '--no-isolation', '--outdir', str(tmp / 'dist'), '.'],
        cwd=src,
        env=env,
    )
    wheels = sorted((tmp / 'dist').glob('mmattn-*.whl'))
    sdists = sorted((tmp / 'dist').glob('mmattn-*.tar.gz'))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(tmp / 'dist')
    venv = tmp / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], cwd=tmp)
    py = str(venv / 'bin' / 'python')
    purelib = _run(
        [py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], cwd=tmp
    ).stdout.strip()
    with open(osp.join(purelib, 'shared_stack.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
        for extra in site.getsitepackages():
            if extra != sysconfig.get_paths()['purelib']:
                f.write(extra + '\n')
    _run(
        [
            sys.executable,
            '-m',
            'pip',
            '--python',
            py,
            'install',
            '--no-deps',
            '--no-index',
            str(wheels[0]),
        ],
        cwd=tmp,
        env=env,
    )
    return dict(py=py, env=env, cwd=str(tmp / 'run'), purelib=purelib, data=REPO)


@pytest.fixture(scope='module')
def shapes_data_module():
    from mmattn.datasets import make_shapes_ade, make_shapes_coco

    make_shapes_coco(osp.join(REPO, 'data', 'shapes_coco'))
    make_shapes_ade(osp.join(REPO, 'data', 'shapes_ade'))


def test_wheel_imports_and_ships_configs_tools_and_model_index(wheel_venv):
    os.makedirs(wheel_venv['cwd'], exist_ok=True)
    code = """
import os.path as osp, mmattn, mmattn.models, mmattn.det, mmattn.seg
from mmengine.config import Config
from mmattn.utils.cli import load_config
pkg = osp.dirname(mmattn.__file__)
print(pkg)
mim = osp.join(pkg, '.mim')
for p in ('configs/agent_attention/metafile.yml', 'configs/_base_/datasets/ade20k.py',
          'tools/train.py', 'tools/test.py', 'demo/image_demo.py', 'model-index.yml'):
    assert osp.isfile(osp.join(mim, p)) and not osp.islink(osp.join(mim, p)), p
cfg = load_config('mmattn::agent_attention/mask-rcnn_agent-pvt-t_fpn_1x_coco.py')
assert cfg.model.backbone.type == 'mmattn.AgentPVT', cfg.model.backbone.type
open('child.py', 'w').write("_base_ = 'mmattn::shapes/fpn_r18_shapes.py'\\n")
assert Config.fromfile('child.py').model.decode_head.num_classes == 4
print('ok')
"""
    out = _run([wheel_venv['py'], '-c', code], cwd=wheel_venv['cwd'], env=wheel_venv['env'])
    pkg = out.stdout.split()[0]
    assert pkg.startswith(wheel_venv['purelib']), (pkg, 'mmattn must come from the wheel')
    assert out.stdout.split()[-1] == 'ok'


def test_mim_train_test_and_run(wheel_venv):
    """``mim train mmattn CONFIG`` (2 iterations, mmattn's .mim/tools/train.py), ``mim test
    mmattn`` of the checkpoint it wrote, and ``mim run
    mmdet print_config`` on an mmattn config, from the wheel's install."""
    cwd = wheel_venv['cwd']
    os.makedirs(cwd, exist_ok=True)
    os.symlink(osp.join(REPO, 'data'), osp.join(cwd, 'data'))
    mim = [wheel_venv['py'], '-c', 'import sys; from mim.cli import cli; sys.exit(cli())']
    shapes = osp.join(wheel_venv['purelib'], 'mmattn', '.mim', 'configs', 'shapes')
    cfg = osp.join(shapes, 'fpn_r18_shapes.py')
    out = _run(
        mim
        + [
            'train',
            'mmattn',
            cfg,
            '--work-dir',
            'mim_train',
            '--cfg-options',
            'train_cfg.max_iters=2',
            'train_cfg.val_begin=3',
            'default_hooks.checkpoint.interval=2',
        ],
        cwd=cwd,
        env=dict(wheel_venv['env'], OMP_NUM_THREADS='1'),
    )
    assert osp.isfile(osp.join(cwd, 'mim_train', 'iter_2.pth')), out.stdout[-2000:]
    # mim test: mmattn's tools/test.py evaluates that checkpoint on the bundled validation split
    out = _run(
        mim
        + [
            'test',
            'mmattn',
            cfg,
            '--checkpoint',
            osp.join('mim_train', 'iter_2.pth'),
            '--work-dir',
            'mim_test',
        ],
        cwd=cwd,
        env=dict(wheel_venv['env'], OMP_NUM_THREADS='1'),
    )
    with open(osp.join(cwd, 'mim_test', 'metrics.json')) as f:
        metrics = json.load(f)
    assert {'mIoU', 'aAcc', 'mAcc'} <= set(metrics), metrics
    out = _run(
        mim + ['run', 'mmdet', 'print_config', osp.join(shapes, 'mask-rcnn_r18_fpn_shapes.py')],
        cwd=cwd,
        env=wheel_venv['env'],
    )
    assert "type='mmattn.InstanceSegTTAModel'" in out.stdout, out.stdout[-2000:]


def test_checkout_install_is_found_by_mim_and_mmengine(tmp_path):
    """`make setup` installs the checkout as a legacy (egg-link) editable install, so that mim
    and MMEngine, which look for a package beside its distribution's metadata, find this
    repository's ``mmattn`` (a PEP 660 editable install would send them to site-packages)."""
    from importlib.metadata import distribution

    from mim.utils import get_installed_path as mim_path
    from mmengine.config import Config
    from mmengine.utils import get_installed_path as mmengine_path

    import mmattn  # registers the ``mmattn::`` prefix with MMEngine

    here = osp.dirname(mmattn.__file__)
    if here != osp.join(REPO, 'mmattn'):
        pytest.skip(f'mmattn is imported from {here}, not from this checkout')
    if 'egg-info' not in str(distribution('mmattn')._path):
        pytest.skip(
            'mmattn is a PEP 660 editable install (tools/setup_env.sh logs why): '
            "mim train/test mmattn then need 'pip install .'"
        )
    assert osp.samefile(mim_path('mmattn'), here)
    assert osp.samefile(mmengine_path('mmattn'), here)
    child = tmp_path / 'child.py'
    child.write_text(
        "_base_ = 'mmattn::shapes/fpn_r18_shapes.py'\n"
        'model = dict(decode_head=dict(num_classes=3))\n'
    )
    cfg = Config.fromfile(str(child))
    assert (
        cfg.model.backbone.type
        == Config.fromfile(
            osp.join(REPO, 'configs', 'shapes', 'fpn_r18_shapes.py')
        ).model.backbone.type
    )
    assert cfg.model.decode_head.num_classes == 3
