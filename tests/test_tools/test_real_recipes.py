"""The real recipes on datasets in the real layouts, run as a new user runs them.

The bundled shapes data has 3 classes with contiguous ids; the recipes under
``configs/<family>/`` read ``data/coco`` (80 categories, gapped ids) and
``data/ade/ADEChallengeData2016`` (label values 0-150). These tests use tiny datasets in exactly
those layouts (:mod:`mmattn.datasets.real_layout`) and the smoke tool
(``tools/misc/smoke_recipes.py``), and guard three blockers that the shapes data never hit:

1. the pre-flight label check refused ADE20K's value 150 (it ignored the class default
   ``reduce_zero_label=True`` of ``ADE20KDataset``);
2. the AMP recipes (``AmpOptimWrapper``) crashed without CUDA;
3. ``tools/test.py`` refused a trained checkpoint when the backbone's ImageNet file was absent.
"""

import importlib.util
import json
import os.path as osp
import sys

import numpy as np
import pytest
from mmengine.config import Config

from mmattn.utils.cli import UserInputError, drop_pretrained_init, load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _smoke_module():
    spec = importlib.util.spec_from_file_location(
        'smoke_recipes', osp.join(REPO, 'tools', 'misc', 'smoke_recipes.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def real_data(tmp_path_factory):
    from mmattn.datasets.real_layout import make_real_layout

    root = tmp_path_factory.mktemp('workspace')
    roots = make_real_layout(str(root / 'data'))
    return root, roots


def _recipe(path):
    return Config.fromfile(osp.join(REPO, 'configs', path))


# --- the fixture has the real layouts' features ------------------------------------------------


def test_coco_fixture_has_the_real_categories_ids_and_odd_images(real_data):
    from mmdet.datasets import CocoDataset

    _, roots = real_data
    with open(osp.join(roots['coco'], 'annotations', 'instances_train2017.json')) as f:
        train = json.load(f)
    with open(osp.join(roots['coco'], 'annotations', 'instances_val2017.json')) as f:
        val = json.load(f)
    ids = [c['id'] for c in train['categories']]
    assert len(ids) == 80 and ids[-1] == 90 and 12 not in ids and 83 not in ids
    assert [c['name'] for c in train['categories']] == list(CocoDataset.METAINFO['classes'])
    anns = train['annotations'] + val['annotations']
    assert any(a['iscrowd'] and isinstance(a['segmentation'], dict) for a in anns)
    assert {a['category_id'] for a in anns} >= {11, 13, 90}  # neighbours of gaps, the last id
    images = train['images'] + val['images']
    assert len({(i['height'], i['width']) for i in images}) >= 5
    annotated = {a['image_id'] for a in anns}
    assert any(i['id'] not in annotated for i in train['images'])
    gray = [
        i
        for i in images
        if len(
            np.asarray(
                __import__('PIL.Image').Image.open(
                    osp.join(
                        roots['coco'], 'train2017' if i['id'] < 1000 else 'val2017', i['file_name']
                    )
                )
            ).shape
        )
        == 2
    ]
    assert gray, 'the fixture needs a grayscale JPEG'

    # mmdet reads it with the real class list: category id 90 maps to label 79, crowds are
    # ignored regions, and the empty image is filtered from training.
    ds = CocoDataset(
        data_root=roots['coco'],
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=[],
    )
    labels = [inst['bbox_label'] for d in ds for inst in d['instances']]
    assert len(ds) == 2 and max(labels) <= 79
    assert ds.cat2label[90] == 79 and ds.cat2label[13] == 11
    assert any(inst['ignore_flag'] for d in ds for inst in d['instances'])


def test_ade_fixture_labels_span_0_to_150_and_mmseg_maps_them(real_data):
    import cv2
    from mmseg.datasets import ADE20KDataset
    from mmseg.datasets.transforms import LoadAnnotations

    _, roots = real_data
    ds = ADE20KDataset(
        data_root=roots['ade20k'],
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=[],
    )
    raw = cv2.imread(ds[0]['seg_map_path'], cv2.IMREAD_UNCHANGED)
    assert raw.min() == 0 and raw.max() == 150
    loaded = LoadAnnotations()(dict(ds[0]))['gt_seg_map']
    # reduce_zero_label: 0 -> ignore (255), 150 ("flag") -> 149, the last of 150 classes
    assert set(np.unique(loaded)) <= set(range(150)) | {255}
    assert 149 in loaded and 255 in loaded


def test_voc_fixture_has_palette_pngs_and_mmseg_reads_class_indices(real_data):
    """VOC ships palette PNGs whose pixel values are the class indices (0-20, 255 borders);
    mmseg's loader must get the indices, not colours, from them and from the aug PNGs."""
    from mmseg.datasets import PascalVOCDataset
    from mmseg.datasets.transforms import LoadAnnotations
    from PIL import Image

    _, roots = real_data
    for seg_dir, split, mode in (
        ('SegmentationClass', 'train', 'P'),
        ('SegmentationClassAug', 'aug', 'L'),
    ):
        ds = PascalVOCDataset(
            data_root=roots['voc'],
            ann_file=f'ImageSets/Segmentation/{split}.txt',
            data_prefix=dict(img_path='JPEGImages', seg_map_path=seg_dir),
            pipeline=[],
        )
        assert len(ds) == 2
        assert Image.open(ds[0]['seg_map_path']).mode == mode
        loaded = LoadAnnotations()(dict(ds[0]))['gt_seg_map']
        assert set(np.unique(loaded)) <= set(range(21)) | {255}
        assert 0 in loaded and 20 in loaded and 255 in loaded


# --- blocker 1: the ADE20K label check ---------------------------------------------------------


def _point_at(cfg, root):
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader']['dataset']['data_root'] = root
    return cfg


def test_preflight_accepts_ade20k_flag_label(real_data):
    """Raw value 150 is valid ADE20K data: ``ADE20KDataset`` reduces zero labels by default."""
    from mmattn.utils.data_checks import check_dataset_contents

    _, roots = real_data
    for recipe in (
        'flatten/fpn_flatten-pvt-t_8xb2-40k_ade20k-512x512.py',
        'biformer/upernet_biformer-t_8xb2-160k_ade20k-512x512.py',
    ):
        cfg = _point_at(_recipe(recipe), roots['ade20k'])
        assert 'reduce_zero_label' not in cfg.train_dataloader.dataset  # the class default
        check_dataset_contents(cfg, splits=('train', 'val'))


def test_preflight_still_refuses_out_of_range_labels(real_data):
    """Without zero reduction, 150 is one past the last class (0-149): refused, named."""
    from mmattn.utils.data_checks import check_dataset_contents

    _, roots = real_data
    cfg = _point_at(
        _recipe('flatten/fpn_flatten-pvt-t_8xb2-40k_ade20k-512x512.py'), roots['ade20k']
    )
    ds = cfg.train_dataloader.dataset
    ds['reduce_zero_label'] = False
    for step in ds.pipeline:
        if step['type'] == 'LoadAnnotations':
            step['reduce_zero_label'] = False
    with pytest.raises(UserInputError, match=r'value 150 .*150 classes \(valid: 0-149'):
        check_dataset_contents(cfg, splits=('train',))


def test_preflight_names_a_reduce_zero_label_mismatch(real_data):
    from mmattn.utils.data_checks import check_dataset_contents

    _, roots = real_data
    cfg = _point_at(
        _recipe('flatten/fpn_flatten-pvt-t_8xb2-40k_ade20k-512x512.py'), roots['ade20k']
    )
    cfg.train_dataloader.dataset['reduce_zero_label'] = False  # pipeline keeps True
    with pytest.raises(UserInputError, match='reduce_zero_label=False but its LoadAnnotations'):
        check_dataset_contents(cfg, splits=('train',))


# --- blocker 2: AMP recipes without CUDA -------------------------------------------------------


@pytest.mark.parametrize(
    'recipe,scope',
    [
        ('biformer/mask-rcnn_biformer-s_fpn_1x_coco.py', 'mmdet'),
        ('biformer/upernet_biformer-s_8xb2-160k_ade20k-512x512.py', 'mmseg'),
    ],
)
def test_amp_recipe_without_fp16_amp(recipe, scope):
    from mmattn.engine.optim_wrapper import fit_optim_wrapper_to_device

    cfg = _recipe(recipe)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and 'loss_scale' in cfg.optim_wrapper
    optimizer = dict(cfg.optim_wrapper.optimizer)

    fp32 = _recipe(recipe)
    note = fit_optim_wrapper_to_device(fp32, amp=False, fp16_amp_available=False)
    assert 'fp32' in note
    assert fp32.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in fp32.optim_wrapper
    assert dict(fp32.optim_wrapper.optimizer) == optimizer  # the recipe's optimiser is kept

    bf16 = _recipe(recipe)
    note = fit_optim_wrapper_to_device(bf16, amp=True, fp16_amp_available=False)
    assert 'bf16' in note and bf16.optim_wrapper.type == 'mmattn.CPUAmpOptimWrapper'
    assert bf16.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in bf16.optim_wrapper
    assert bf16.optim_wrapper.get('autocast_modules') == (
        ('backbone', 'neck') if scope == 'mmdet' else None
    )

    gpu = _recipe(recipe)
    assert fit_optim_wrapper_to_device(gpu, amp=False, fp16_amp_available=True) is None
    assert gpu.optim_wrapper.type == 'AmpOptimWrapper'  # untouched where fp16 AMP runs


def test_optim_wrapper_type_override_drops_leftover_amp_keys():
    """``--cfg-options optim_wrapper.type=OptimWrapper`` on an AMP recipe: no loss_scale error."""
    from mmengine.optim import build_optim_wrapper

    from mmattn.engine.optim_wrapper import fit_optim_wrapper_to_device

    cfg = load_config(
        osp.join(REPO, 'configs', 'biformer', 'mask-rcnn_biformer-s_fpn_1x_coco.py'),
        {'optim_wrapper.type': 'OptimWrapper'},
    )
    note = fit_optim_wrapper_to_device(cfg, fp16_amp_available=False)
    assert 'loss_scale' in note and 'loss_scale' not in cfg.optim_wrapper
    import torch

    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    assert type(wrapper).__name__ == 'OptimWrapper'


# --- blocker 3 and the workers hint ------------------------------------------------------------


def test_test_tool_drops_every_pretrained_init():
    cfg = _recipe('biformer/mask-rcnn_biformer-s_fpn_1x_coco.py')
    ckpt = cfg.model.backbone.init_cfg.checkpoint
    assert drop_pretrained_init(cfg.model) == [ckpt]
    assert cfg.model.backbone.init_cfg is None
    ea = _recipe('external_attention/upernet_r50-ea_4xb4-160k_ade20k-512x512.py')
    dropped = drop_pretrained_init(ea.model)
    assert dropped and all('://' in d or d.endswith('.pth') for d in dropped)
    assert not list(_smoke_module()._pretrained_inits(ea.model))


def test_num_workers_zero_turns_persistent_workers_off(capsys):
    recipe = osp.join(REPO, 'configs', 'agent_attention', 'retinanet_agent-pvt-t_fpn_1x_coco.py')
    assert Config.fromfile(recipe).train_dataloader.persistent_workers
    cfg = load_config(recipe, {'train_dataloader.num_workers': 0})
    assert cfg.train_dataloader.persistent_workers is False
    assert 'persistent_workers=False' in capsys.readouterr().err


# --- the recipes end to end, one per family and head -------------------------------------------

#: Every family and every head at least once, in 6 recipes (a recipe per (family, head) pair
#: would be 21 and take ~20 min on 2 cores; ``tools/misc/smoke_recipes.py`` runs them all, its
#: latest table is docs/smoke_recipes.md). Chosen to cover the blockers: an AMP recipe and the
#: flag label (BiFormer UperNet), URL-initialised ResNets (EANet). They run at a quarter of the
#: recipes' image scales and crops, the only change besides the schedule.
SMOKE = [
    'agent_attention/mask-rcnn_agent-pvt-t_fpn_1x_coco.py',
    'flatten/retinanet_flatten-pvt-t_fpn_1x_coco.py',
    'biformer/upernet_biformer-t_8xb2-160k_ade20k-512x512.py',
    'shunted/fpn_shunted-t_8xb4-40k_ade20k-512x512.py',
    'external_attention/eanet_r50-d8_4xb4-80k_ade20k-512x512.py',
    'plugins/rtmdet_tiny_agent-neck_8xb32-300e_coco.py',
    'cswin/fpn_agent-cswin-t_8xb2-40k_ade20k-512x512.py',
]


def test_smoke_list_covers_every_family_and_head():
    families = {r.split('/')[0] for r in SMOKE}
    assert families == {
        'agent_attention',
        'biformer',
        'cswin',
        'external_attention',
        'flatten',
        'shunted',
        'plugins',
    }
    heads = {osp.basename(r).split('_')[0] for r in SMOKE}
    assert {'mask-rcnn', 'retinanet', 'upernet', 'fpn', 'rtmdet'} <= heads
    assert any(_recipe(r).optim_wrapper.type == 'AmpOptimWrapper' for r in SMOKE)
    assert all(osp.isfile(osp.join(REPO, 'configs', r)) for r in SMOKE)


@pytest.mark.parametrize('recipe', SMOKE, ids=[osp.basename(r)[:-3] for r in SMOKE])
def test_recipe_trains_and_tests_on_real_layout(recipe, real_data):
    """train.py (1 step) + test.py, with no pretrained file present at test time."""
    root, _ = real_data
    smoke = _smoke_module()
    row = smoke.run_recipe(osp.join(REPO, 'configs', recipe), str(root), scale=0.25, timeout=600)
    assert row['train'], row['error']
    assert row['test'], row['error']
    assert not osp.exists(osp.join(root, 'pretrained')) or not any(
        f.endswith('.pth') for f in __import__('os').listdir(osp.join(root, 'pretrained'))
    )
    expected = 'coco/bbox_mAP' if 'coco' in recipe else 'mIoU'
    # a 1-step model may score no box above the threshold; CocoMetric then reports nothing
    if expected == 'mIoU':
        assert expected in row['metrics'], row['metrics']


def test_smoke_tool_cli_reports_a_failure(tmp_path):
    """The command-line tool prints its table and exits 1 when a recipe fails."""
    import subprocess

    broken = tmp_path / 'broken.py'
    broken.write_text(
        f"_base_ = '{REPO}/configs/flatten/fpn_flatten-pvt-t_8xb2-40k_ade20k-"
        f"512x512.py'\nmodel = dict(backbone=dict(arch='no-such-arch'))\n"
    )
    out = tmp_path / 'table.md'
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'misc', 'smoke_recipes.py'),
            str(broken),
            '--workspace',
            str(tmp_path / 'ws'),
            '--out',
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    table = out.read_text()
    assert '`broken.py` | FAIL | - |' in table and 'no-such-arch' in table
