"""Bad-input catalogue: each user mistake gives one clear ``error:`` line and damages nothing.

Most cases run ``tools/train.py`` / ``tools/test.py``'s ``main`` in-process under the tools'
``user_errors`` (the same code path as the command line, minus ~5 s of imports per case); the
checkpoint cases that fail inside the runner run the tool in a subprocess. Every case asserts:
exit status 2, exactly one stderr line ``error: ...`` naming what is wrong and where, with a
hint of what to do, and an unchanged file tree (data, configs, checkpoints, work dir).
"""

import hashlib
import importlib.util
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from reliability_families import FAMILIES, REPO, landed

CATALOGUE = []  # names of the error cases that ran (the count is printed by the last test)


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_mmattn_tool_{name}', osp.join(REPO, 'tools', f'{name}.py')
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _snapshot(*roots):
    state = {}
    for root in roots:
        for folder, _, files in os.walk(root):
            for f in files:
                path = osp.join(folder, f)
                with open(path, 'rb') as fh:
                    state[path] = hashlib.sha1(fh.read()).hexdigest()
    return state


def expect_error(capsys, tool, argv, *needles, roots=()):
    """Run ``tool.main(argv)`` as the command line does; check the one-line error."""
    from mmattn.utils.cli import user_errors

    mod = _tool(tool)
    before = _snapshot(*roots)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        with user_errors():
            mod.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exc.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    assert _snapshot(*roots) == before, 'files changed on disk'
    CATALOGUE.append(lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- datasets


def _write_coco(root, n=3, size=64, gray=(), sixteen=()):
    os.makedirs(osp.join(root, 'img'), exist_ok=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(n):
        name = f'{i:03d}.png' if i in sixteen else f'{i:03d}.jpg'
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        if i in gray:
            img = img[..., 0]
        if i in sixteen:
            img = img.astype(np.uint16) * 16
        cv2.imwrite(osp.join(root, 'img', name), img)
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
        anns.append(
            dict(
                id=i + 1,
                image_id=i + 1,
                category_id=1 + i % 3,
                iscrowd=0,
                bbox=[8, 8, 20, 24],
                area=480.0,
                segmentation=[[8, 8, 28, 8, 28, 32, 8, 32]],
            )
        )
    cats = [dict(id=1, name='circle'), dict(id=2, name='rectangle'), dict(id=3, name='triangle')]
    data = dict(images=images, annotations=anns, categories=cats)
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(data, f)
    return data


# Should a check ever miss, the run stops after one iteration instead of training for minutes.
_SHORT = 'train_cfg = dict(max_iters=1, val_interval=1000)\n'


def _coco_cfg(tmp_path, root):
    cfg = tmp_path / 'det.py'
    ds = f"dict(data_root={root + '/'!r}, ann_file='ann.json', data_prefix=dict(img='img/'))"
    cfg.write_text(
        f'_base_ = {osp.join(REPO, "configs/shapes/mask-rcnn_r18_fpn_shapes.py")!r}\n'
        f'train_dataloader = dict(dataset={ds})\n'
        f'val_dataloader = dict(dataset={ds})\n'
        f'test_dataloader = val_dataloader\n'
        f'val_evaluator = dict(ann_file={root + "/ann.json"!r})\n'
        f'test_evaluator = val_evaluator\n' + _SHORT
    )
    return cfg


@pytest.fixture
def coco(tmp_path):
    root = str(tmp_path / 'coco')
    data = _write_coco(root)
    return root, data, _coco_cfg(tmp_path, root)


def _rewrite(root, data):
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(data, f)


def _train(capsys, cfg, root, tmp_path, *needles, extra=()):
    work = tmp_path / 'work'
    line = expect_error(
        capsys, 'train', [cfg, '--work-dir', work, *extra], *needles, roots=(root, str(cfg))
    )
    assert not work.exists() or not any(p.suffix == '.pth' for p in work.rglob('*'))
    return line


def test_image_missing(capsys, coco, tmp_path):
    root, _, cfg = coco
    os.remove(osp.join(root, 'img', '001.jpg'))
    _train(capsys, cfg, root, tmp_path, '001.jpg', 'does not exist', 'ann.json')


def test_image_corrupt(capsys, coco, tmp_path):
    root, _, cfg = coco
    with open(osp.join(root, 'img', '002.jpg'), 'wb') as f:
        f.write(b'this is not a jpeg' * 10)
    _train(capsys, cfg, root, tmp_path, '002.jpg', 'corrupt', 're-export')


def test_image_16bit(capsys, tmp_path):
    root = str(tmp_path / 'coco')
    _write_coco(root, sixteen=(1,))
    cfg = _coco_cfg(tmp_path, root)
    _train(capsys, cfg, root, tmp_path, '001.png', '16-bit', 'convert it to 8-bit')


def test_image_grayscale_is_accepted(tmp_path):
    """Not an error (COCO itself has grayscale images): loaded as 3 identical channels."""
    from mmcv.transforms import LoadImageFromFile
    from mmengine.config import Config

    from mmattn.engine.run import preflight

    root = str(tmp_path / 'coco')
    _write_coco(root, gray=(0,))
    preflight(Config.fromfile(str(_coco_cfg(tmp_path, root))))
    img = LoadImageFromFile()(dict(img_path=osp.join(root, 'img', '000.jpg')))['img']
    assert img.shape == (64, 64, 3)


def test_annotation_json_malformed(capsys, coco, tmp_path):
    root, _, cfg = coco
    with open(osp.join(root, 'ann.json'), 'a') as f:
        f.write('}{')
    _train(capsys, cfg, root, tmp_path, 'ann.json', 'not valid JSON', 'line')


def test_box_outside_image(capsys, coco, tmp_path):
    root, data, cfg = coco
    data['annotations'][1]['bbox'] = [50, 40, 30, 10]  # x + w = 80 > 64
    _rewrite(root, data)
    _train(capsys, cfg, root, tmp_path, 'annotation 2', 'outside the 64x64 image', 'clip')


def test_box_zero_area(capsys, coco, tmp_path):
    root, data, cfg = coco
    data['annotations'][0]['bbox'] = [10, 10, 0, 12]
    _rewrite(root, data)
    _train(capsys, cfg, root, tmp_path, 'annotation 1', 'zero-area', 'delete the annotation')


def test_empty_image_list(capsys, coco, tmp_path):
    root, data, cfg = coco
    data['images'], data['annotations'] = [], []
    _rewrite(root, data)
    _train(capsys, cfg, root, tmp_path, 'ann.json', 'no images')


def test_unknown_category_id(capsys, coco, tmp_path):
    root, data, cfg = coco
    data['annotations'][2]['category_id'] = 7
    _rewrite(root, data)
    _train(capsys, cfg, root, tmp_path, 'category_id 7', 'categories')


def test_json_size_differs_from_image(capsys, coco, tmp_path):
    root, data, cfg = coco
    data['images'][0]['width'] = 640
    data['annotations'][0]['bbox'] = [8, 8, 20, 24]
    _rewrite(root, data)
    _train(capsys, cfg, root, tmp_path, '000.jpg', '64x64', '640x64', 'fix width/height')


def test_config_classes_not_in_json(capsys, coco, tmp_path):
    root, data, cfg = coco
    for cat, name in zip(data['categories'], ('cat', 'dog', 'bird')):
        cat['name'] = name
    _rewrite(root, data)
    _train(capsys, cfg, root, tmp_path, 'metainfo.classes', 'JSON categories')


def _write_seg(root, n=2, size=48, label_max=4):
    rng = np.random.default_rng(0)
    for sub in ('images/training', 'annotations/training'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for i in range(n):
        cv2.imwrite(
            osp.join(root, 'images/training', f'{i}.jpg'),
            rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
        )
        cv2.imwrite(
            osp.join(root, 'annotations/training', f'{i}.png'),
            rng.integers(0, label_max + 1, (size, size), dtype=np.uint8),
        )


@pytest.fixture
def seg(tmp_path):
    root = str(tmp_path / 'ade')
    _write_seg(root)
    cfg = tmp_path / 'seg.py'
    cfg.write_text(
        f'_base_ = {osp.join(REPO, "configs/shapes/fpn_r18_shapes.py")!r}\n'
        f'train_dataloader = dict(dataset=dict(data_root={root!r}))\n'
        f'val_dataloader = dict(dataset=dict(data_root={root!r}, data_prefix=dict('
        f"img_path='images/training', seg_map_path='annotations/training')))\n" + _SHORT
    )
    return root, cfg


def test_label_value_above_class_count(capsys, seg, tmp_path):
    root, cfg = seg
    label = np.full((48, 48), 2, np.uint8)
    label[5, 5] = 9  # 4 classes + "other" 0 under reduce_zero_label: valid 0-4
    cv2.imwrite(osp.join(root, 'annotations/training', '1.png'), label)
    _train(capsys, cfg, root, tmp_path, '1.png', 'value 9', '4 classes', 'remap')


def test_label_map_missing(capsys, seg, tmp_path):
    root, cfg = seg
    os.remove(osp.join(root, 'annotations/training', '0.png'))
    _train(capsys, cfg, root, tmp_path, '0.png', 'does not exist')


def test_image_folder_empty(capsys, seg, tmp_path):
    root, cfg = seg
    for name in os.listdir(osp.join(root, 'images/training')):
        os.remove(osp.join(root, 'images/training', name))
    _train(capsys, cfg, root, tmp_path, 'images/training', 'no *.jpg')


def test_label_map_size_mismatch(capsys, seg, tmp_path):
    root, cfg = seg
    cv2.imwrite(osp.join(root, 'annotations/training', '0.png'), np.ones((40, 48), np.uint8))
    _train(capsys, cfg, root, tmp_path, '0.png', '48x40', 'its image is 48x48')


def test_label_map_rgb(capsys, seg, tmp_path):
    root, cfg = seg
    cv2.imwrite(osp.join(root, 'annotations/training', '1.png'), np.ones((48, 48, 3), np.uint8))
    _train(capsys, cfg, root, tmp_path, '1.png', '3 channels', 'single-channel')


# ----------------------------------------------------------------------- model config


def _family_cfg(tmp_path, family='shunted', backbone_extra=''):
    from reliability_families import config_text

    cfg = tmp_path / f'{family}.py'
    cfg.write_text(config_text(family, extra=_SHORT, backbone_extra=backbone_extra))
    return cfg


def test_unknown_backbone_type_lists_valid(capsys, shapes_data, tmp_path):
    cfg = tmp_path / 'typo.py'
    cfg.write_text(
        _family_cfg(tmp_path).read_text().replace('ShuntedTransformer', 'ShuntedTransfomer')
    )
    line = _train(capsys, cfg, str(cfg), tmp_path, 'mmattn.ShuntedTransfomer', 'valid')
    assert 'ShuntedTransformer' in line and 'BiFormer' in line


def test_unknown_arch_name_lists_valid(capsys, shapes_data, tmp_path):
    cfg = _family_cfg(tmp_path, 'biformer')
    cfg.write_text(
        cfg.read_text().replace(
            "arch={'embed_dims': [32, 64, 96, 128], 'depths': [1, 1, 2, 1], "
            "'topks': [1, 4, 16, -2]}",
            "arch='tinny'",
        )
    )
    line = _train(capsys, cfg, str(cfg), tmp_path, 'tinny', 'model.backbone')
    assert "'tiny'" in line and "'small'" in line


def test_unknown_attention_type_lists_valid(capsys, shapes_data, tmp_path):
    cfg = _family_cfg(
        tmp_path, 'flatten-pvt', backbone_extra=", attn_cfgs=dict(type='FocusedLinearAtention')"
    )
    line = _train(capsys, cfg, str(cfg), tmp_path, 'FocusedLinearAtention', 'model.backbone')
    assert 'FocusedLinearAttention' in line and 'ShiftWindowMSA' in line

    from mmattn.registry import build_module

    with pytest.raises(KeyError, match='AgentAtention.*registered types are:.*AgentAttention'):
        build_module(dict(type='AgentAtention', embed_dims=32))
    CATALOGUE.append('build_module(type=AgentAtention)')


def test_out_indices_out_of_range(capsys, shapes_data, tmp_path):
    cfg = _family_cfg(tmp_path, 'shunted', backbone_extra=', out_indices=(0, 1, 4)')
    _train(capsys, cfg, str(cfg), tmp_path, 'out_indices', 'model.backbone')


def test_cfg_options_key_misspelt(capsys, shapes_data, tmp_path):
    cfg = osp.join(REPO, 'configs/shapes/fpn_r18_shapes.py')
    _train(
        capsys,
        cfg,
        cfg,
        tmp_path,
        'train_cfg.max_iter',
        "did you mean 'max_iters'",
        extra=('--cfg-options', 'train_cfg.max_iter=5'),
    )


# Input smaller than the total stride (32): per family, either the one-line ValueError it is
# meant to raise (PVT pyramids: a stage map smaller than the next patch embedding; Shunted: a
# map smaller than the aggregation rate) or a forward whose four maps have the ceil-divided
# sizes 5, 3, 2, 1 (Swin and BiFormer pad; 20 / 4 = 5, then each merge halves, rounding up).
_PVT_TOO_SMALL = ('error', ('smaller than its 2x2 patch embedding', 'at least 32 px'))
_PADDED = ('output', [(5, 5), (3, 3), (2, 2), (1, 1)])
SMALL_INPUT_OUTCOME = {
    'agent-pvt': _PVT_TOO_SMALL,
    'flatten-pvt': _PVT_TOO_SMALL,
    'ea-pvt': _PVT_TOO_SMALL,
    'agent-swin': _PADDED,
    'flatten-swin': _PADDED,
    'biformer': _PADDED,
    'agent-cswin': _PADDED,  # the convs floor: (20 - 3) // 4 + 1 = 5, then ceil halves
    'flatten-cswin': _PADDED,
    'shunted': ('error', ('5x5 is smaller than the aggregation rate 8', 'use a larger input')),
}


@pytest.mark.parametrize('family', list(SMALL_INPUT_OUTCOME))
def test_input_smaller_than_stride(family):
    from mmattn.registry import MODELS

    bb, channels = FAMILIES[family]
    model = MODELS.build(dict(bb, type=bb['type'].split('.')[1])).eval()
    kind, expected = SMALL_INPUT_OUTCOME[family]
    x = torch.randn(1, 3, 20, 20)
    if kind == 'error':
        with pytest.raises(ValueError) as err, torch.no_grad():
            model(x)
        msg = str(err.value)
        assert len(msg.splitlines()) == 1, msg
        for needle in expected:
            assert needle in msg, (needle, msg)
        CATALOGUE.append(f'{family} 20x20: {msg}')
        return
    with torch.no_grad():
        outs = model(x)
    assert [tuple(o.shape[2:]) for o in outs] == expected
    assert [o.shape[1] for o in outs] == channels
    assert all(torch.isfinite(o).all() for o in outs)


def test_small_input_outcomes_cover_every_family():
    assert set(SMALL_INPUT_OUTCOME) == set(FAMILIES)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_non_divisible_sizes_work(family):
    """97x131 is not a multiple of any patch, window or region size: must work."""
    from mmattn.registry import MODELS

    assert family in landed()
    bb, channels = FAMILIES[family]
    model = MODELS.build(dict(bb, type=bb['type'].split('.')[1])).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 131))
    assert [o.shape[1] for o in outs] == channels
    for o, stride in zip(outs, (4, 8, 16, 32)):
        assert abs(o.shape[2] - 97 / stride) < 1.01 and abs(o.shape[3] - 131 / stride) < 1.01
        assert torch.isfinite(o).all()


# ----------------------------------------------------------------------- checkpoints


def _backbone_ckpt(tmp_path, family, name):
    from mmattn.registry import MODELS
    from mmattn.utils.checkpoint import save_atomic

    bb = FAMILIES[family][0]
    model = MODELS.build(dict(bb, type=bb['type'].split('.')[1]))
    path = str(tmp_path / name)
    save_atomic({'state_dict': model.state_dict()}, path)
    return path


def test_pretrained_checkpoint_of_another_family(capsys, shapes_data, tmp_path):
    ckpt = _backbone_ckpt(tmp_path, 'biformer', 'biformer.pth')
    cfg = _family_cfg(
        tmp_path,
        'shunted',
        backbone_extra=(f", init_cfg=dict(type='Pretrained', checkpoint={ckpt!r})"),
    )
    _train(
        capsys,
        cfg,
        str(tmp_path),
        tmp_path,
        'biformer.pth',
        'does not fit',
        'another family or variant',
    )


def test_pretrained_checkpoint_of_another_variant(capsys, shapes_data, tmp_path):
    """Same family, deeper variant: every tensor name of the tiny model exists."""
    from mmattn.registry import MODELS
    from mmattn.utils.checkpoint import save_atomic

    bb = dict(FAMILIES['shunted'][0])
    arch = dict(bb['arch'], depths=[2, 3, 2, 2])
    model = MODELS.build(dict(bb, type='ShuntedTransformer', arch=arch))
    ckpt = str(tmp_path / 'shunted_deeper.pth')
    save_atomic({'state_dict': model.state_dict()}, ckpt)
    cfg = _family_cfg(
        tmp_path,
        'shunted',
        backbone_extra=(f", init_cfg=dict(type='Pretrained', checkpoint={ckpt!r})"),
    )
    _train(capsys, cfg, str(tmp_path), tmp_path, 'shunted_deeper.pth', 'does not fit')


def test_truncated_checkpoint(capsys, shapes_data, tmp_path):
    ckpt = _backbone_ckpt(tmp_path, 'shunted', 'shunted.pth')
    with open(ckpt, 'r+b') as f:
        f.truncate(os.path.getsize(ckpt) * 2 // 3)
    cfg = _family_cfg(tmp_path, 'shunted')
    _train(
        capsys,
        cfg,
        str(tmp_path),
        tmp_path,
        'shunted.pth',
        'truncated or corrupt',
        extra=('--resume', ckpt),
    )
    expect_error(
        capsys,
        'test',
        [cfg, ckpt, '--work-dir', tmp_path / 'w2'],
        'truncated',
        roots=(str(tmp_path / 'shunted.pth'),),
    )


def test_full_checkpoint_of_another_family_in_test_py(shapes_data, tmp_path, tool):
    """tools/test.py with a checkpoint of another model: refused before evaluation."""
    from reliability_families import build_model

    from mmattn.utils.checkpoint import save_atomic

    model = build_model('biformer', tmp_path)
    ckpt = str(tmp_path / 'biformer_fpn.pth')
    save_atomic({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    cfg = _family_cfg(tmp_path, 'shunted')
    before = _snapshot(ckpt)
    proc = tool('test.py', cfg, ckpt, '--work-dir', tmp_path / 'w', check=False)
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert 'does not fit the model' in lines[0] and 'biformer_fpn.pth' in lines[0], lines[0]
    assert 'Traceback' not in proc.stderr
    assert _snapshot(ckpt) == before
    CATALOGUE.append(lines[0])


SHAPES_CONFIGS = sorted(
    osp.basename(p) for p in __import__('glob').glob(osp.join(REPO, 'configs/shapes/*.py'))
)


@pytest.mark.parametrize('name', SHAPES_CONFIGS)
def test_family_shapes_configs_pass_preflight(shapes_data, name):
    """No false alarms: every bundled shapes config (each family's) passes all checks."""
    from mmengine.config import Config

    from mmattn.engine.run import preflight

    preflight(Config.fromfile(osp.join(REPO, 'configs/shapes', name)), ('train', 'val', 'test'))


def test_zz_catalogue_size():
    """The catalogue above holds at least 20 distinct bad inputs (printed for the report)."""
    print(f'\nbad inputs tried: {len(CATALOGUE)}')
    for line in CATALOGUE:
        print('  ', line[:160])
    assert len(CATALOGUE) >= 20


def teardown_module(module):
    shutil.rmtree(osp.join(REPO, 'work_dirs', '_never_'), ignore_errors=True)
