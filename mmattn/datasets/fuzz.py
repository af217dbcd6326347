"""A seeded corpus of damaged datasets: the real-layout COCO, ADE20K and VOC fixtures
(:mod:`mmattn.datasets.real_layout`), each copy with one kind of damage.

Every variant says which outcome mmattn's policy promises for it:

* ``a``: it runs, because the data is valid by the format's own rules;
* ``b``: it runs and skips the bad samples, with a count in the output (a ``note:`` line);
* ``c``: it fails before training with one ``error:`` line naming the file and the problem.

:func:`make_corpus` writes the variants (undamaged files are hard links to one clean copy, so
a corpus of 140 variants takes a few MB); :func:`classify` runs the pre-flight checks of
``tools/train.py`` in-process and, where they pass, loads every sample of every split through
the real MMDetection / MMSegmentation dataset and pipeline and checks it is not garbage (finite
boxes, labels in range). ``python tools/misc/fuzz_datasets.py`` runs the whole corpus and
writes the table to ``docs/reliability.md``.
"""

import json
import os
import os.path as osp
import random
import shutil
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .real_layout import make_real_layout

__all__ = [
    'OUTCOMES',
    'Result',
    'Variant',
    'classify',
    'config_text',
    'make_corpus',
    'run_corpus',
    'summary',
    'write_config',
]

OUTCOMES = {'a': 'runs (valid data)', 'b': 'skips, with a count', 'c': 'error before training'}


@dataclass
class Variant:
    name: str  # unique, e.g. 'coco/train/box-nan'
    dataset: str  # 'coco', 'ade20k' or 'voc'
    kind: str  # the damage, e.g. 'box-nan'
    split: str  # 'train' or 'val': which part is damaged
    expect: str  # 'a', 'b' or 'c'
    root: str = ''  # the variant's dataset root once written


# --- file-level damage (never written in place: the files are hard links) -------------------


def _replace(path: str, data: bytes) -> None:
    if osp.lexists(path):
        os.remove(path)
    with open(path, 'wb') as f:
        f.write(data)


def _read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def _truncate(path, rng):
    data = _read(path)
    _replace(path, data[: int(len(data) * rng.uniform(0.3, 0.7))])


def _empty(path, rng):
    _replace(path, b'')


def _not_image(path, rng):
    _replace(path, b'<html><body>404 Not Found</body></html>\n' * 8)


def _missing(path, rng):
    os.remove(path)


def _write_png(path, array):
    import cv2

    ok, buf = cv2.imencode('.png', array)
    assert ok
    _replace(path, buf.tobytes())


def _label_shape(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im).shape


def _label_wrong_size(path, rng):
    h, w = _label_shape(path)[:2]
    _write_png(path, np.ones((h // 2, w), np.uint8))


def _label_rgb(path, rng):
    h, w = _label_shape(path)[:2]
    _write_png(path, np.ones((h, w, 3), np.uint8))


def _label_out_of_range(value):
    def damage(path, rng):
        from PIL import Image

        with Image.open(path) as im:
            label = np.array(im)
            palette = im.getpalette() if im.mode == 'P' else None
        label[:8, :8] = value
        if palette is not None:  # keep VOC's palette PNG a palette PNG
            out = Image.fromarray(label, mode='P')
            out.putpalette(palette)
            if osp.lexists(path):
                os.remove(path)
            out.save(path)
        else:
            _write_png(path, label)

    return damage


def _label_all_other(path, rng):
    h, w = _label_shape(path)[:2]
    _write_png(path, np.zeros((h, w), np.uint8))


# --- COCO JSON damage: functions of (data, split_images, rng) editing the dict ---------------


def _first_ann(data, crowd=False, with_seg=True):
    for ann in data['annotations']:
        if bool(ann.get('iscrowd')) == crowd and (not with_seg or ann.get('segmentation')):
            return ann
    raise LookupError('fixture has no such annotation')


def _set_ann(key, value, crowd=False):
    def damage(data, rng):
        _first_ann(data, crowd)[key] = value

    return damage


def _del_ann(key):
    def damage(data, rng):
        del _first_ann(data)[key]

    return damage


def _del_img(key):
    def damage(data, rng):
        del data['images'][0][key]

    return damage


def _set_img(key, value):
    def damage(data, rng):
        data['images'][0][key] = value

    return damage


def _del_top(key):
    def damage(data, rng):
        del data[key]

    return damage


def _set_bbox(fn):
    def damage(data, rng):
        ann = _first_ann(data)
        ann['bbox'] = fn(list(ann['bbox']))

    return damage


def _dup(key):
    def damage(data, rng):
        entries = data[key]
        entries[1]['id'] = entries[0]['id']

    return damage


def _dup_image_id(data, rng):
    data['images'][1]['id'] = data['images'][0]['id']


def _ann_for_missing_image(data, rng):
    _first_ann(data)['image_id'] = 987654


def _unknown_category(data, rng):
    _first_ann(data)['category_id'] = 12  # one of COCO's gaps


def _polygon(fn):
    def damage(data, rng):
        ann = _first_ann(data)
        ann['segmentation'] = fn(ann['segmentation'][0])

    return damage


def _rle(fn):
    def damage(data, rng):
        ann = _first_ann(data, crowd=True)
        ann['segmentation'] = fn(dict(ann['segmentation']))

    return damage


def _rle_compressed(seg):
    from pycocotools import mask as mask_utils

    h, w = seg['size']
    rle = mask_utils.frPyObjects(seg, h, w)
    return dict(size=[h, w], counts=rle['counts'].decode())


def _size_disagrees(data, rng):
    # an image without a mask RLE (whose own size would be named first)
    rle_images = {
        a['image_id'] for a in data['annotations'] if isinstance(a.get('segmentation'), dict)
    }
    img = next(i for i in data['images'] if i['id'] not in rle_images)
    img['width'] += 32


def _extra_keys(data, rng):
    data['info']['contributor'] = 'fuzz'
    for ann in data['annotations']:
        ann['attributes'] = dict(occluded=False)


def _drop_iscrowd_key(data, rng):
    for ann in data['annotations']:
        if not ann.get('iscrowd'):
            ann.pop('iscrowd', None)


def _remove_annotation(data, rng):
    data['annotations'].remove(_first_ann(data))


def _int_boxes(data, rng):
    for ann in data['annotations']:
        x, y, w, h = ann['bbox']
        ann['bbox'] = [int(x), int(y), max(1, int(w)), max(1, int(h))]


def _text(fn):
    """A damage of the JSON text itself: ``fn(text, rng) -> text``."""
    fn.is_text = True
    return fn


@_text
def _json_truncated(text, rng):
    return text[: int(len(text) * rng.uniform(0.2, 0.8))]


@_text
def _json_list(text, rng):
    return json.dumps([json.loads(text)])


# (kind, damage, expected outcome). File damages take (path, rng); JSON ones (data, rng).
COCO_IMAGE_DAMAGE: List[Tuple[str, Callable, str]] = [
    ('image-truncated', _truncate, 'c'),
    ('image-empty', _empty, 'c'),
    ('image-not-an-image', _not_image, 'c'),
    ('image-missing', _missing, 'c'),
]
COCO_JSON_DAMAGE: List[Tuple[str, Callable, str]] = [
    ('json-truncated', _json_truncated, 'c'),
    ('json-not-an-object', _json_list, 'c'),
    ('json-no-images', _del_top('images'), 'c'),
    ('json-no-annotations', _del_top('annotations'), 'c'),
    ('json-no-categories', _del_top('categories'), 'c'),
    (
        'json-annotations-is-dict',
        lambda d, r: d.update(annotations={'1': d['annotations'][0]}),
        'c',
    ),
    ('image-entry-no-width', _del_img('width'), 'c'),
    ('image-entry-no-height', _del_img('height'), 'c'),
    ('image-entry-no-file-name', _del_img('file_name'), 'c'),
    ('image-entry-no-id', _del_img('id'), 'c'),
    ('image-width-is-string', _set_img('width', '640'), 'c'),
    ('image-file-name-is-int', _set_img('file_name', 7), 'c'),
    ('image-id-is-string', _set_img('id', 'a'), 'c'),
    ('ann-no-bbox', _del_ann('bbox'), 'c'),
    ('ann-no-area', _del_ann('area'), 'c'),
    ('ann-no-category-id', _del_ann('category_id'), 'c'),
    ('ann-no-image-id', _del_ann('image_id'), 'c'),
    ('ann-no-id', _del_ann('id'), 'c'),
    ('ann-no-segmentation', _del_ann('segmentation'), 'c'),
    ('ann-bbox-is-string', _set_ann('bbox', '10 10 20 20'), 'c'),
    ('ann-bbox-has-strings', _set_bbox(lambda b: [str(v) for v in b]), 'c'),
    ('ann-bbox-3-numbers', _set_bbox(lambda b: b[:3]), 'c'),
    ('ann-category-id-is-string', _set_ann('category_id', '1'), 'c'),
    ('ann-iscrowd-is-string', _set_ann('iscrowd', 'no'), 'c'),
    ('ann-segmentation-is-string', _set_ann('segmentation', 'polygon'), 'c'),
    ('ann-area-is-nan', _set_ann('area', float('nan')), 'c'),
    ('box-negative-x', _set_bbox(lambda b: [-40.0] + b[1:]), 'c'),
    ('box-negative-width', _set_bbox(lambda b: b[:2] + [-b[2], b[3]]), 'c'),
    ('box-zero-area', _set_bbox(lambda b: b[:3] + [0.0]), 'c'),
    ('box-nan', _set_bbox(lambda b: [float('nan')] + b[1:]), 'c'),
    ('box-inf', _set_bbox(lambda b: b[:2] + [float('inf'), b[3]]), 'c'),
    ('box-outside-image', _set_bbox(lambda b: [b[0] + 4000.0] + b[1:]), 'c'),
    ('unknown-category-id', _unknown_category, 'c'),
    ('annotation-for-missing-image', _ann_for_missing_image, 'c'),
    ('duplicate-annotation-id', _dup('annotations'), 'c'),
    ('duplicate-image-id', _dup_image_id, 'c'),
    ('duplicate-category-id', _dup('categories'), 'c'),
    ('polygon-2-points', _polygon(lambda p: [p[:4]]), 'b'),
    ('polygon-odd-coordinates', _polygon(lambda p: [p[:-1]]), 'b'),
    ('polygon-nan', _polygon(lambda p: [[float('nan')] + p[1:]]), 'c'),
    ('rle-counts-short', _rle(lambda s: dict(s, counts=s['counts'][:-1])), 'c'),
    ('rle-size-wrong', _rle(lambda s: dict(s, size=[s['size'][0] // 2, s['size'][1]])), 'c'),
    ('rle-negative-count', _rle(lambda s: dict(s, counts=[-5] + s['counts'][1:])), 'c'),
    ('rle-compressed-garbage', _rle(lambda s: dict(s, counts='\x01\x02not rle')), 'c'),
    ('image-size-disagrees', _size_disagrees, 'c'),
    # valid by COCO's rules
    ('valid-extra-keys', _extra_keys, 'a'),
    ('valid-no-iscrowd-key', _drop_iscrowd_key, 'a'),
    ('valid-annotation-removed', _remove_annotation, 'a'),
    ('valid-integer-boxes', _int_boxes, 'a'),
    ('valid-compressed-rle', _rle(_rle_compressed), 'a'),
]
SEG_IMAGE_DAMAGE: List[Tuple[str, Callable, str]] = [
    ('image-truncated', _truncate, 'c'),
    ('image-empty', _empty, 'c'),
    ('image-not-an-image', _not_image, 'c'),
]
SEG_LABEL_DAMAGE: List[Tuple[str, Callable, str]] = [
    ('label-missing', _missing, 'c'),
    ('label-truncated', _truncate, 'c'),
    ('label-empty', _empty, 'c'),
    ('label-not-an-image', _not_image, 'c'),
    ('label-wrong-size', _label_wrong_size, 'c'),
    ('label-3-channels', _label_rgb, 'c'),
    ('label-value-out-of-range', _label_out_of_range(200), 'c'),
    ('valid-label-all-ignored', _label_all_other, 'a'),
]

_COCO_SPLIT_DIRS = {'train': 'train2017', 'val': 'val2017'}
_ADE_SPLIT_DIRS = {'train': 'training', 'val': 'validation'}


def _coco_variants(clean: str, out: str, rng: random.Random) -> List[Variant]:
    variants = []
    for split, folder in _COCO_SPLIT_DIRS.items():
        names = sorted(os.listdir(osp.join(clean, folder)))
        for kind, damage, expect in COCO_IMAGE_DAMAGE:
            variants.append(
                (
                    Variant(f'coco/{split}/{kind}', 'coco', kind, split, expect),
                    'file',
                    osp.join(folder, rng.choice(names)),
                    damage,
                )
            )
        # every image of the split truncated, one variant each (sizes and gray differ)
        for name in names:
            kind = f'image-truncated-{osp.splitext(name)[0][-4:]}'
            variants.append(
                (
                    Variant(f'coco/{split}/{kind}', 'coco', kind, split, 'c'),
                    'file',
                    osp.join(folder, name),
                    _truncate,
                )
            )
        ann = f'annotations/instances_{folder}.json'
        for kind, damage, expect in COCO_JSON_DAMAGE:
            variants.append(
                (Variant(f'coco/{split}/{kind}', 'coco', kind, split, expect), 'json', ann, damage)
            )
    return _write_all(clean, out, variants, rng)


def _seg_variants(dataset: str, clean: str, out: str, rng: random.Random) -> List[Variant]:
    variants = []
    if dataset == 'ade20k':
        splits = {s: (f'images/{d}', f'annotations/{d}') for s, d in _ADE_SPLIT_DIRS.items()}
    else:
        splits = {s: ('JPEGImages', 'SegmentationClass') for s in ('train', 'val')}
    for split, (img_dir, seg_dir) in splits.items():
        if dataset == 'voc':
            with open(osp.join(clean, 'ImageSets', 'Segmentation', f'{split}.txt')) as f:
                stems = [line.strip() for line in f if line.strip()]
        else:
            stems = sorted(osp.splitext(n)[0] for n in os.listdir(osp.join(clean, img_dir)))
        stem = rng.choice(stems)
        for kind, damage, expect in SEG_IMAGE_DAMAGE:
            variants.append(
                (
                    Variant(f'{dataset}/{split}/{kind}', dataset, kind, split, expect),
                    'file',
                    osp.join(img_dir, stem + '.jpg'),
                    damage,
                )
            )
        for kind, damage, expect in SEG_LABEL_DAMAGE:
            variants.append(
                (
                    Variant(f'{dataset}/{split}/{kind}', dataset, kind, split, expect),
                    'file',
                    osp.join(seg_dir, stem + '.png'),
                    damage,
                )
            )
        if dataset == 'ade20k':
            # an image removed: its label map is simply unused (mmseg lists the image folder)
            variants.append(
                (
                    Variant(
                        f'{dataset}/{split}/image-missing', dataset, 'image-missing', split, 'a'
                    ),
                    'file',
                    osp.join(img_dir, stem + '.jpg'),
                    _missing,
                )
            )
        else:
            # VOC lists its images: a listed image that is missing is an error
            variants.append(
                (
                    Variant(f'voc/{split}/image-missing', dataset, 'image-missing', split, 'c'),
                    'file',
                    osp.join(img_dir, stem + '.jpg'),
                    _missing,
                )
            )
            variants.append(
                (
                    Variant(
                        f'voc/{split}/split-list-empty', dataset, 'split-list-empty', split, 'c'
                    ),
                    'file',
                    f'ImageSets/Segmentation/{split}.txt',
                    _empty,
                )
            )
    return _write_all(clean, out, variants, rng)


def _write_all(clean, out, planned, rng) -> List[Variant]:
    written = []
    for variant, how, rel, damage in planned:
        root = osp.join(out, variant.name.replace('/', '__'))
        if osp.isdir(root):
            shutil.rmtree(root)
        shutil.copytree(clean, root, copy_function=os.link)
        path = osp.join(root, rel)
        if how == 'file':
            damage(path, rng)
        else:
            with open(path, encoding='utf-8') as f:
                text = f.read()
            if getattr(damage, 'is_text', False):
                text = damage(text, rng)
            else:
                data = json.loads(text)
                damage(data, rng)
                text = json.dumps(data)
            _replace(path, text.encode())
        variant.root = root
        written.append(variant)
    return written


def make_corpus(out: str, seed: int = 0) -> List[Variant]:
    """Write the clean fixtures and every damaged variant under ``out``; return the variants.

    The same ``seed`` gives the same corpus, byte for byte.
    """
    variants_dir = osp.join(out, 'variants')
    if osp.isdir(variants_dir):
        shutil.rmtree(variants_dir)
    clean = make_real_layout(osp.join(out, 'clean'), seed=seed)
    rng = random.Random(seed)
    variants = _coco_variants(clean['coco'], osp.join(out, 'variants'), rng)
    variants += _seg_variants('ade20k', clean['ade20k'], osp.join(out, 'variants'), rng)
    variants += _seg_variants('voc', clean['voc'], osp.join(out, 'variants'), rng)
    assert len({v.name for v in variants}) == len(variants)
    return variants


# --- configs ----------------------------------------------------------------------------------


def config_text(variant: Variant, repo: str, max_iters: int = 2) -> str:
    """A small config that trains and tests on ``variant`` (ResNet-18 shapes recipes)."""
    root = variant.root
    short = (
        f'train_cfg = dict(max_iters={max_iters}, val_interval=1000)\n'
        f'default_hooks = dict(checkpoint=dict(interval={max_iters}), '
        f'logger=dict(interval=1))\n'
        f'randomness = dict(seed=0)\n'
    )
    if variant.dataset == 'coco':
        from mmdet.datasets import CocoDataset

        classes = tuple(CocoDataset.METAINFO['classes'])
        ds = (
            'dict(data_root={root!r}, metainfo=dict(classes={classes!r}), '
            "ann_file='annotations/instances_{folder}.json', data_prefix=dict(img='{folder}/'))"
        )
        train = ds.format(root=root + '/', classes=classes, folder='train2017')
        val = ds.format(root=root + '/', classes=classes, folder='val2017')
        return (
            f'_base_ = {osp.join(repo, "configs/shapes/mask-rcnn_r18_fpn_shapes.py")!r}\n'
            f'model = dict(roi_head=dict(bbox_head=dict(num_classes=80), '
            f'mask_head=dict(num_classes=80)))\n'
            f'train_dataloader = dict(batch_size=2, dataset={train})\n'
            f'val_dataloader = dict(batch_size=1, dataset={val})\n'
            f'test_dataloader = val_dataloader\n'
            f'val_evaluator = dict(ann_file={root + "/annotations/instances_val2017.json"!r})'
            f'\ntest_evaluator = val_evaluator\n' + short
        )
    if variant.dataset == 'ade20k':
        dtype, classes, zero = 'ADE20KDataset', 150, True
        prefix = "dict(img_path='images/{d}', seg_map_path='annotations/{d}')"
        train_ds = f"ann_file='', data_prefix={prefix.format(d='training')}"
        val_ds = f"ann_file='', data_prefix={prefix.format(d='validation')}"
    else:
        dtype, classes, zero = 'PascalVOCDataset', 21, False
        prefix = "dict(img_path='JPEGImages', seg_map_path='SegmentationClass')"
        train_ds = f"ann_file='ImageSets/Segmentation/train.txt', data_prefix={prefix}"
        val_ds = f"ann_file='ImageSets/Segmentation/val.txt', data_prefix={prefix}"
    train_pipeline = (
        f"[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', "
        f"reduce_zero_label={zero}), dict(type='RandomResize', scale=(128, 128), "
        f"ratio_range=(0.75, 1.5), keep_ratio=True), dict(type='RandomCrop', "
        f"crop_size=(128, 128)), dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]"
    )
    test_pipeline = (
        f"[dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128), "
        f"keep_ratio=True), dict(type='LoadAnnotations', reduce_zero_label={zero}), "
        f"dict(type='PackSegInputs')]"
    )

    def dataset(rest, pipeline):
        return (
            f"dict(_delete_=True, type='{dtype}', data_root={root!r}, {rest}, "
            f'reduce_zero_label={zero}, pipeline={pipeline})'
        )

    return (
        f'_base_ = {osp.join(repo, "configs/shapes/fpn_r18_shapes.py")!r}\n'
        f'model = dict(decode_head=dict(num_classes={classes}))\n'
        f'train_dataloader = dict(batch_size=2, dataset={dataset(train_ds, train_pipeline)})\n'
        f'val_dataloader = dict(dataset={dataset(val_ds, test_pipeline)})\n'
        f'test_dataloader = val_dataloader\n' + short
    )


# --- classification ---------------------------------------------------------------------------


@dataclass
class Result:
    variant: Variant
    outcome: str  # 'a', 'b', 'c', or 'failure' (a traceback or garbage: a broken policy)
    message: str


def _check_sample(variant: Variant, data: dict, num_classes: int) -> Optional[str]:
    """Why a packed sample is garbage, or None."""
    import torch

    sample = data['data_samples']
    if variant.dataset == 'coco':
        inst = sample.gt_instances
        boxes = inst.bboxes.tensor if hasattr(inst.bboxes, 'tensor') else inst.bboxes
        if not torch.isfinite(boxes).all():
            return 'non-finite boxes reached the model'
        if len(inst.labels) and not (
            0 <= int(inst.labels.min()) and int(inst.labels.max()) < num_classes
        ):
            return f'labels {inst.labels.tolist()} outside 0-{num_classes - 1}'
        # training masks follow the resized image; the test pipeline loads them unresized
        shapes = {tuple(sample.img_shape), tuple(sample.ori_shape)}
        if len(inst) and tuple(inst.masks.masks.shape[1:]) not in shapes:
            return f'masks of size {tuple(inst.masks.masks.shape[1:])}, image {shapes}'
        return None
    seg = sample.gt_sem_seg.data
    values = set(torch.unique(seg).tolist())
    bad = {v for v in values if v != 255 and not 0 <= v < num_classes}
    return f'label values {sorted(bad)} outside 0-{num_classes - 1}' if bad else None


def classify(variant: Variant, cfg) -> Result:
    """The outcome of ``variant`` under ``tools/train.py``'s checks, in-process.

    Args:
        variant (Variant): A written variant.
        cfg (dict): The variant's config (:func:`config_text`), loaded, as a dict.
    """
    import contextlib
    import io

    from mmattn.utils.cli import UserInputError, _one_line, check_dataset_paths
    from mmattn.utils.data_checks import check_dataset_contents

    notes = io.StringIO()
    try:
        with contextlib.redirect_stderr(notes):
            check_dataset_paths(cfg, splits=('train', 'val', 'test'))
            check_dataset_contents(cfg, splits=('train', 'val', 'test'))
    except UserInputError as err:
        return Result(variant, 'c', _one_line(err))
    except Exception as err:  # a check that crashed is a failure of the policy
        return Result(variant, 'failure', f'pre-flight raised {type(err).__name__}: {err}')
    noted = [
        line[len('note: ') :] for line in notes.getvalue().splitlines() if line.startswith('note: ')
    ]
    # The checks passed: every sample of every split must load into something sane.
    from mmengine.registry import DefaultScope

    scope = 'mmdet' if variant.dataset == 'coco' else 'mmseg'
    num_classes = 80 if variant.dataset == 'coco' else (150 if variant.dataset == 'ade20k' else 21)
    if scope == 'mmdet':
        from mmdet.registry import DATASETS
        from mmdet.utils import register_all_modules
    else:
        from mmseg.registry import DATASETS
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    try:
        with DefaultScope.overwrite_default_scope(scope):
            for split in ('train', 'val'):
                ds = DATASETS.build(cfg[f'{split}_dataloader']['dataset'])
                if len(ds) == 0:
                    return Result(variant, 'failure', f'the {split} set is empty after loading')
                for i in range(len(ds)):
                    data = ds[i]
                    why = _check_sample(variant, data, num_classes)
                    if why:
                        return Result(variant, 'failure', f'{split} sample {i}: {why}')
    except Exception as err:
        return Result(
            variant,
            'failure',
            f'loading raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}',
        )
    if noted:
        return Result(variant, 'b', ' '.join(noted))
    return Result(variant, 'a', 'trains and tests')


def _retarget(node, old: str, new: str):
    """A copy of a config tree with every string path under ``old`` moved under ``new``."""
    if isinstance(node, dict):
        return {k: _retarget(v, old, new) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_retarget(v, old, new) for v in node)
    if isinstance(node, str) and node.startswith(old):
        return new + node[len(old) :]
    return node


def run_corpus(
    out: str, repo: str, seed: int = 0, variants: Optional[List[Variant]] = None
) -> List[Result]:
    """Write the corpus under ``out`` (unless ``variants`` are given) and classify every
    variant in-process. One config per dataset is parsed; each variant gets a copy of it with
    the paths moved to its folder."""
    from mmengine.config import Config

    variants = variants if variants is not None else make_corpus(out, seed)
    templates = {}
    results = []
    for v in variants:
        if v.dataset not in templates:
            clean = osp.join(
                osp.dirname(osp.dirname(v.root)),
                'clean',
                dict(coco='coco', ade20k='ade/ADEChallengeData2016', voc='VOCdevkit/VOC2012')[
                    v.dataset
                ],
            )
            probe = Variant('template', v.dataset, 'none', 'train', 'a', clean)
            templates[v.dataset] = (
                clean,
                Config.fromstring(config_text(probe, repo), file_format='.py').to_dict(),
            )
        clean, template = templates[v.dataset]
        results.append(classify(v, _retarget(template, clean, v.root)))
    return results


def write_config(variant: Variant, repo: str, folder: str, max_iters: int = 2) -> str:
    """Write the config of ``variant`` into ``folder``; return its path."""
    path = osp.join(folder, variant.name.replace('/', '__') + '.py')
    with open(path, 'w') as f:
        f.write(config_text(variant, repo, max_iters))
    return path


def summary(results: List[Result]) -> Dict[str, Dict[str, int]]:
    """{dataset: {outcome: count}}."""
    table: Dict[str, Dict[str, int]] = {}
    for r in results:
        row = table.setdefault(r.variant.dataset, {})
        row[r.outcome] = row.get(r.outcome, 0) + 1
    return table
