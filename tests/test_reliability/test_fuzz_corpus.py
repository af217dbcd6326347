"""The seeded corpus of damaged datasets: every variant ends in exactly its promised outcome.

The whole corpus (165 variants of the real-layout COCO, ADE20K and VOC fixtures) goes through
``tools/train.py``'s pre-flight checks in this process, and every variant that passes them has
every sample of every split loaded through the real MMDetection / MMSegmentation dataset and
pipeline and checked (finite boxes, labels in range). Running ``tools/train.py`` and
``tools/test.py`` as subprocesses for all of them would take an hour on two cores, so that is
done for one variant of each outcome (and by ``tools/misc/fuzz_datasets.py --subprocess N``).
A file that breaks after the pre-flight check, while training or testing runs, is tested with
real subprocesses too.
"""

import hashlib
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmattn.datasets.fuzz import OUTCOMES, make_corpus, run_corpus

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('fuzz'))
    return root, run_corpus(root, REPO, seed=0)


def test_every_variant_ends_in_its_promised_outcome(corpus):
    _, results = corpus
    assert len(results) >= 100
    wrong = [
        (r.variant.name, r.variant.expect, r.outcome, r.message)
        for r in results
        if r.outcome != r.variant.expect
    ]
    assert not wrong, wrong
    outcomes = {r.outcome for r in results}
    assert outcomes == set(OUTCOMES)
    for r in results:
        if r.outcome == 'c':  # one line, naming the damaged file (or its annotation file)
            assert '\n' not in r.message and r.variant.root in r.message, r.message
        if r.outcome == 'b':
            assert 'skipped: ' in r.message, r.message
    kinds = {r.variant.kind for r in results}
    for needed in (
        'image-truncated',
        'image-empty',
        'image-not-an-image',
        'image-missing',
        'json-truncated',
        'json-no-annotations',
        'ann-bbox-has-strings',
        'box-negative-x',
        'box-zero-area',
        'box-nan',
        'box-outside-image',
        'unknown-category-id',
        'annotation-for-missing-image',
        'duplicate-annotation-id',
        'polygon-2-points',
        'rle-counts-short',
        'label-wrong-size',
        'label-3-channels',
        'label-value-out-of-range',
        'image-size-disagrees',
    ):
        assert needed in kinds, needed


def test_corpus_is_seeded(corpus, tmp_path):
    """The same seed writes the same bytes (checked on the variants of one dataset kind)."""
    root, results = corpus

    def digest(base, names):
        h = hashlib.sha1()
        for name in names:
            folder = osp.join(base, 'variants', name.replace('/', '__'))
            for d, _, files in sorted(os.walk(folder)):
                for f in sorted(files):
                    with open(osp.join(d, f), 'rb') as fh:
                        h.update(f.encode() + fh.read())
        return h.hexdigest()

    again = make_corpus(str(tmp_path), seed=0)
    names = [v.name for v in again if v.dataset == 'coco' and v.split == 'train']
    assert [r.variant.name for r in results] == [v.name for v in again]
    assert digest(root, names) == digest(str(tmp_path), names)


def _fuzz_tool():
    spec = importlib.util.spec_from_file_location(
        'fuzz_datasets', osp.join(REPO, 'tools', 'misc', 'fuzz_datasets.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    'name',
    [
        'coco/train/polygon-2-points',
        'coco/val/duplicate-annotation-id',
        'voc/train/valid-label-all-ignored',
    ],
)
def test_subprocess_outcome_matches(corpus, tmp_path, name):
    """tools/train.py (2 iterations) and tools/test.py as a user runs them."""
    _, results = corpus
    result = next(r for r in results if r.variant.name == name)
    outcome, message = _fuzz_tool().run_tools(result.variant, REPO, str(tmp_path))
    assert outcome == result.variant.expect, message


# A file that breaks after the pre-flight check: the driver replaces every training (or
# test) image with text once the check has passed.
BREAK_DRIVER = r"""
import glob, os, runpy, sys
import mmattn.engine.run as run
real = run.preflight

def preflight(cfg, splits=('train', 'val')):
    real(cfg, splits)
    for path in glob.glob(os.environ['BREAK_GLOB']):
        os.remove(path)
        with open(path, 'w') as f:
            f.write('not an image any more')

run.preflight = preflight
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


@pytest.mark.parametrize('tool_name', ['train.py', 'test.py'])
def test_file_broken_after_preflight_gives_one_error(shapes_data, tmp_path, tool_name):
    import shutil

    data = tmp_path / 'ade'
    shutil.copytree(shapes_data['ade'], data)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        f'_base_ = {osp.join(REPO, "configs/shapes/fpn_r18_shapes.py")!r}\n'
        f'train_dataloader = dict(batch_size=2, dataset=dict(data_root={str(data)!r}))\n'
        f'val_dataloader = dict(dataset=dict(data_root={str(data)!r}))\n'
        f'test_dataloader = val_dataloader\n'
        f'train_cfg = dict(max_iters=2, val_interval=1000)\n'
    )
    driver = tmp_path / 'driver.py'
    driver.write_text(BREAK_DRIVER)
    split = 'training' if tool_name == 'train.py' else 'validation'
    args = [str(cfg)]
    if tool_name == 'test.py':
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules

        from mmattn.utils.checkpoint import save_atomic

        register_all_modules(init_default_scope=False)
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(Config.fromfile(str(cfg)).model)
        ckpt = str(tmp_path / 'model.pth')
        save_atomic({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
        args.append(ckpt)
    env = dict(os.environ, BREAK_GLOB=str(data / 'images' / split / '*.jpg'))
    proc = subprocess.run(
        [
            sys.executable,
            str(driver),
            osp.join(REPO, 'tools', tool_name),
            *args,
            '--work-dir',
            str(tmp_path / 'work'),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert errors[0].startswith('error: cannot load sample '), errors[0]
    assert str(data / 'images' / split) in errors[0] and 'after the pre-flight check' in errors[0]
    assert not list((tmp_path / 'work').glob('*.pth'))
